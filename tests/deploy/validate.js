'use strict';
// Validates the deployment's JSON inputs against the Amazon ECS API model (2014-11-13) as
// shipped in the npm package @aws-sdk/client-ecs (AWS SDK for JavaScript v3), at the exact
// version pinned in package.json / package-lock.json. That package ships no Smithy JSON model,
// only code generated from it; this file reads three parts of it (plain JavaScript; requiring
// the package loads its own @smithy/@aws-sdk dependencies, and nothing is sent anywhere):
//
// 1. The static schemas, exported as "<Shape>$" by the package's CommonJS entry
//    node_modules/@aws-sdk/client-ecs/dist-cjs/index.js (the same generated code as
//    dist-es/schemas/schemas_0.js; the tuple format is declared in @smithy/types
//    dist-types/schema/static-schemas.d.ts and sentinels.d.ts). A shape is
//      [3 structure | 4 union | 1 list | 2 map | 0 named simple | 9 operation, namespace, name, traits, ...];
//    a structure has [..., memberNames, memberSchemas, requiredCount]: the last, an unnamed
//    "number?" in static-schemas.d.ts, is the number of required members (smithy-typescript
//    PR #1835, "encode required member count in schemas", January 2026), which are listed
//    first (not written down anywhere: the sanity check below proves it against the .d.ts for
//    every structure). A bare number is a simple type (0 string or enum, 1 number, 2 boolean,
//    4-7 timestamp, 15 document, 21 blob), with 64 (list of) or 128 (map of) or'ed in; a member
//    with traits of its own is [target, traits]. From these: structure and union member names
//    (unknown member = error; a union takes exactly one), member types (string / number /
//    boolean / timestamp / blob / document / list / map / structure / union, nested) and
//    required members.
// 2. dist-types/models/models_*.d.ts: the TypeScript interfaces of the same shapes. A member's
//    declared type names its enum ("assignPublicIp?: AssignPublicIp | undefined"), which the
//    schemas leave out (an enum is just 0, a string); required members are declared without
//    "?" (used only to cross-check 1).
// 3. dist-types/models/enums.d.ts: each enum's values ("export declare const AssignPublicIp:
//    { readonly DISABLED: "DISABLED"; ... }"), checked equal to the package's runtime objects.
// The sanity check below proves, for every structure and union the package exports, that the
// schemas and the .d.ts agree on member names, kinds and required members, and that every enum
// a member names exists; it fails on a package built without the required counts.
//
// What this model cannot check that the v2 model used before (aws-sdk 2.1693.0,
// apis/ecs-2014-11-13.min.json plus clients/ecs.d.ts) could: integer versus fractional
// numbers. Schema type 1 is every Smithy number ("byte, short, integer, long, float, double,
// intEnum", sentinels.d.ts) and the .d.ts says "number", so desiredCount: 1.5 passes here (the
// v2 model said "integer"); a string or anything else that is not a number still fails.
// Neither model has lengths, ranges or patterns (constraint traits are not generated into the
// schemas, PR #1835; the v2 minified model has no min/max either), so none are checked.
//
// Usage: node validate.js                 templates (placeholders filled with samples),
//                                         project rules, and negative tests
//        node validate.js --captured DIR  inputs the aws stub captured during stub runs
//        node validate.js --captured DIR --tracing  ...every task definition with the X-Ray
//                                         daemon sidecar (deploy.sh --tracing), and negative tests
// Prints one "PASS: ..." or "FAIL: ..." line per check.
const fs = require('fs');
const path = require('path');

const HERE = __dirname;
const ROOT = path.resolve(HERE, '..', '..');
const PKG_DIR = path.join(HERE, 'node_modules', '@aws-sdk', 'client-ecs');
const PKG = require(path.join(PKG_DIR, 'package.json'));
const ecs = require(PKG_DIR); // "main": dist-cjs/index.js
const MODELS = path.join(PKG_DIR, 'dist-types', 'models');
const dts = fs.readdirSync(MODELS).filter((f) => /^models_\d+\.d\.ts$/.test(f)).sort().map((f) => fs.readFileSync(path.join(MODELS, f), 'utf8')).join('\n');
const enumsDts = fs.readFileSync(path.join(MODELS, 'enums.d.ts'), 'utf8');
// The documentation comments as prose (they keep the model's HTML tags).
const dtsProse = dts.replace(/<\/?[a-z][^>]*>/g, '');

// ------------------------------------------------------------------ d.ts: member types and enums
const tsShapes = {}; // structure or union name -> { member -> { type, optional } }
for (const m of dts.matchAll(/^export interface (\w+) \{$([\s\S]*?)^\}$/gm)) {
  const members = {};
  for (const mm of m[2].matchAll(/^ {4}(\w+)(\??): (.+);$/gm)) members[mm[1]] = { type: mm[3].replace(/ \| undefined$/, ''), optional: mm[2] === '?' };
  tsShapes[m[1]] = members;
}
// A union: "export type X = X.AMember | ... | X.$UnknownMember" and a namespace X with one
// interface per member, "interface AMember { a: T; $unknown?: never; }".
for (const m of dts.matchAll(/^export declare namespace (\w+) \{$([\s\S]*?)^\}$/gm)) {
  const members = {};
  for (const mm of m[2].matchAll(/^ {4}interface \w+Member \{\n {8}(\w+): (.+);\n {8}\$unknown\?: never;\n {4}\}$/gm)) members[mm[1]] = { type: mm[2], optional: true };
  tsShapes[m[1]] = members;
}
const tsEnums = {}; // enum name -> values
for (const m of enumsDts.matchAll(/^export declare const (\w+): \{$([\s\S]*?)^\};$/gm)) {
  tsEnums[m[1]] = [...m[2].matchAll(/^ {4}readonly (?:\w+|"[^"]*"): ("[^"]*"|-?\d+);$/gm)].map((x) => JSON.parse(x[1]));
}
const listOf = (ts) => (ts && ts.endsWith('[]') ? ts.slice(0, -2) : undefined); // "X[]" -> "X"
const mapOf = (ts) => (/^Record<string, (.+)>$/.exec(ts || '') || [])[1]; // "Record<string, X>" -> "X"

// ------------------------------------------------------------------ schemas: the shapes
const SIMPLE = { 0: 'string', 1: 'number', 2: 'boolean', 4: 'timestamp', 5: 'timestamp', 6: 'timestamp', 7: 'timestamp', 15: 'document', 17: 'number', 19: 'number', 21: 'blob', 42: 'blob' };
const deref = (ref) => (typeof ref === 'function' ? ref() : ref);
// shape(schema ref) -> { kind, name?, names/members/required (structure, union), member (list), key/value (map) }
function shape(ref) {
  let s = deref(ref);
  while (Array.isArray(s) && s.length === 2) s = deref(s[0]); // a member: [target, member traits]
  if (typeof s === 'number') {
    if (s >= 64 && s < 128) return { kind: 'list', member: s & 63 };
    if (s >= 128 && s < 256) return { kind: 'map', key: 0, value: s & 63 };
    return { kind: SIMPLE[s] || `simple schema ${s}` };
  }
  if (!Array.isArray(s)) return { kind: `schema ${JSON.stringify(s)}` };
  switch (s[0]) {
    case 0: return Object.assign(shape(s[4]), { name: s[2] }); // a simple shape with traits of its own
    case 1: return { kind: 'list', name: s[2], member: s[4] };
    case 2: return { kind: 'map', name: s[2], key: s[4], value: s[5] };
    case 3: return { kind: 'structure', name: s[2], names: s[4], members: s[5], required: s[4].slice(0, s[6] || 0) };
    case 4: return { kind: 'union', name: s[2], names: s[4], members: s[5], required: [] };
    default: return { kind: `schema id ${s[0]}`, name: s[2] };
  }
}
function jsType(v) {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}
function enumCheck(value, ts, where) {
  const values = ts && tsEnums[ts];
  return values && !values.includes(value) ? [`${where}: ${JSON.stringify(value).replace(/"/g, "'")} is not one of ${values.join(', ')}`] : [];
}

// validate(value, schema ref, .d.ts type of this position, path) -> list of error strings
function validate(value, ref, ts, where) {
  const errors = [];
  const sh = shape(ref);
  switch (sh.kind) {
    case 'structure':
    case 'union': {
      if (jsType(value) !== 'object') return [`${where}: expected an object, got ${jsType(value)}`];
      const tsMembers = tsShapes[sh.name] || {};
      for (const req of sh.required) if (!(req in value)) errors.push(`${where}: missing required member '${req}'`);
      const set = Object.keys(value);
      if (sh.kind === 'union' && set.length !== 1) errors.push(`${where}: a union takes exactly one of ${sh.names.join(', ')}, got ${set.length}`);
      for (const [k, v] of Object.entries(value)) {
        const i = sh.names.indexOf(k);
        if (i < 0) {
          errors.push(`${where}: unknown member '${k}'`);
          continue;
        }
        errors.push(...validate(v, sh.members[i], tsMembers[k] && tsMembers[k].type, `${where}.${k}`));
      }
      break;
    }
    case 'list':
      if (!Array.isArray(value)) return [`${where}: expected a list, got ${jsType(value)}`];
      value.forEach((v, i) => errors.push(...validate(v, sh.member, listOf(ts), `${where}[${i}]`)));
      break;
    case 'map':
      if (jsType(value) !== 'object') return [`${where}: expected a map, got ${jsType(value)}`];
      for (const [k, v] of Object.entries(value)) {
        errors.push(...validate(k, sh.key, undefined, `${where} key '${k}'`));
        errors.push(...validate(v, sh.value, mapOf(ts), `${where}['${k}']`));
      }
      break;
    case 'string':
      if (typeof value !== 'string') return [`${where}: expected a string, got ${jsType(value)}`];
      errors.push(...enumCheck(value, ts, where));
      break;
    case 'number': // any Smithy number: the schemas do not tell integer from double
      if (typeof value !== 'number' || !Number.isFinite(value)) return [`${where}: expected a number, got ${jsType(value)}`];
      errors.push(...enumCheck(value, ts, where)); // an intEnum
      break;
    case 'boolean':
      if (typeof value !== 'boolean') errors.push(`${where}: expected a boolean, got ${jsType(value)}`);
      break;
    case 'timestamp':
      if (typeof value !== 'string' && typeof value !== 'number') errors.push(`${where}: expected a timestamp`);
      break;
    case 'blob': // base64 text in JSON input
      if (typeof value !== 'string') errors.push(`${where}: expected a blob (base64 string), got ${jsType(value)}`);
      break;
    case 'document':
      break;
    default:
      errors.push(`${where}: validator does not handle ${sh.kind}`);
  }
  return errors;
}

const OPS = ['RegisterTaskDefinition', 'CreateService', 'UpdateService'];
const inputOf = (op) => ecs[op + '$'][4]; // an operation: [9, namespace, name, traits, input, output]
function validateOp(op, doc) {
  return validate(doc, inputOf(op), undefined, op + 'Request');
}
// A nested shape, reached by walking member names (or, for a list, any name) from an operation's input.
function validateAt(op, memberPath, doc) {
  let ref = inputOf(op);
  let ts;
  for (const name of memberPath) {
    const sh = shape(ref);
    if (sh.kind === 'list') {
      ref = sh.member;
      ts = listOf(ts);
      continue;
    }
    ref = sh.members[sh.names.indexOf(name)];
    ts = ((tsShapes[sh.name] || {})[name] || {}).type;
  }
  return validate(doc, ref, ts, memberPath.join('.'));
}

// ------------------------------------------------------------------ placeholders
const SAMPLES = {
  PREFIX: 'scdemo',
  ACCOUNT_ID: '123456789012',
  REGION: 'eu-west-1',
  CALLER_IMAGE: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/scdemo/caller@sha256:' + 'a'.repeat(64),
  RESPONDER_IMAGE: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/scdemo/responder@sha256:' + 'b'.repeat(64),
  CALLER_LOG_GROUP: '/ecs/scdemo/caller',
  RESPONDER_LOG_GROUP: '/ecs/scdemo/responder',
  PROXY_LOG_GROUP: '/ecs/scdemo/service-connect',
  EXECUTION_ROLE_ARN: 'arn:aws:iam::123456789012:role/scdemo-task-execution',
  TASK_ROLE_ARN: 'arn:aws:iam::123456789012:role/scdemo-task',
  CLUSTER: 'scdemo',
  NAMESPACE_ARN: 'arn:aws:servicediscovery:eu-west-1:123456789012:namespace/ns-abcdef0123456789',
  CALLER_TASK_DEFINITION: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/scdemo-caller:1',
  RESPONDER_TASK_DEFINITION: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/scdemo-responder:1',
  SUBNETS: 'subnet-0aaa", "subnet-0bbb', // list placeholder, as deploy.sh fills it
  SECURITY_GROUP_ID: 'sg-0123456789abcdef0',
  SPEC_SHA256: 'c'.repeat(64),
  METRICS_EMF: '0',
  APP_VERSION: '1',
  FAULT_ERROR_RATE: '0',
  TLS_PCA_ARN: 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555',
  TLS_ROLE_ARN: 'arn:aws:iam::123456789012:role/scdemo-ecs-infrastructure-tls',
  TLS_KMS_KEY: 'arn:aws:kms:eu-west-1:123456789012:key/66666666-7777-8888-9999-000000000000',
  // Secrets Manager appends "-" and six random characters to the name in a secret's ARN.
  CALLER_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:scdemo/mtls/caller-AbC123',
  RESPONDER_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:scdemo/mtls/responder-xYz789',
  MTLS_CERTS_SHA256: 'd'.repeat(64),
  LOG_GROUP: '/ecs/scdemo/caller', // task-definitions/xray-daemon.json: the log group of the task it joins
};
function fill(file) {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8').replace(/\$\{([A-Za-z0-9_]+)\}/g, (m, name) => {
    if (!(name in SAMPLES)) throw new Error(`${file}: no sample value for ${m}`);
    return SAMPLES[name];
  });
  return JSON.parse(text);
}

// ------------------------------------------------------------------ reporting
let failed = 0;
function check(name, errors) {
  if (errors.length === 0) console.log(`PASS: ${name}`);
  else {
    failed++;
    console.log(`FAIL: ${name}`);
    for (const e of errors) console.log(`      ${e}`);
  }
}
// A negative test: the mutated input must fail, and for the stated reason only (every error
// matches the pattern), so an unrelated error cannot make it pass. The errors are printed.
function expectRejected(name, errors, pattern) {
  const hit = errors.length > 0 && errors.every((e) => pattern.test(e));
  check(`rejects ${name}`, hit ? [] : [`expected only errors matching ${pattern}, got: ${errors.join('; ') || 'none'}`]);
  if (hit) for (const e of errors) console.log(`      error: ${e}`);
}
const clone = (o) => JSON.parse(JSON.stringify(o));

// ------------------------------------------------------------------ deployment strategies
// The schemas carry no ranges (see the top), but the pinned model's documentation states them
// for the canary and linear settings; they are read from it here, so a newer model that changes
// them changes the rules. bakeTimeInMinutes has no documented range: a whole number >= 0.
function documented(re, what) {
  const m = re.exec(dtsProse);
  if (!m) throw new Error(`the model's documentation no longer says ${what}`);
  return m.slice(1).map(Number);
}
const RANGES = {
  canaryPercent: documented(/percentage of production traffic to shift to the new service revision during the canary phase\. Valid values are multiples of 0\.1 from ([\d.]+) to ([\d.]+)\./, 'the canaryPercent range'),
  canaryBakeTimeInMinutes: documented(/wait during the canary phase before shifting the remaining production traffic to the new service revision\. Valid values are (\d+) to (\d+) minutes/, 'the canaryBakeTimeInMinutes range'),
  stepPercent: documented(/percentage of production traffic to shift in each step during a linear deployment\. Valid values are multiples of 0\.1 from ([\d.]+) to ([\d.]+)\./, 'the stepPercent range'),
  stepBakeTimeInMinutes: documented(/wait between each traffic shifting step during a linear deployment\. Valid values are (\d+) to (\d+) minutes/, 'the stepBakeTimeInMinutes range'),
};
documented(/Configuration for canary deployment strategy\. Only valid when the deployment strategy is CANARY\./, 'canaryConfiguration is only valid with CANARY');
documented(/Configuration for linear deployment strategy\. Only valid when the deployment strategy is LINEAR\./, 'linearConfiguration is only valid with LINEAR');
function strategyRules(dc) {
  const e = [];
  if (!dc || typeof dc !== 'object') return e;
  const tenth = (v) => typeof v === 'number' && Math.abs(v * 10 - Math.round(v * 10)) < 1e-9;
  const percent = (where, v, [lo, hi]) => { if (typeof v === 'number' && !(tenth(v) && v >= lo && v <= hi)) e.push(`${where} ${v} is not a multiple of 0.1 from ${lo} to ${hi}`); };
  const minutes = (where, v, [lo, hi]) => { if (typeof v === 'number' && !(Number.isInteger(v) && v >= lo && v <= hi)) e.push(`${where} ${v} is not a whole number from ${lo} to ${hi}`); };
  const only = { canaryConfiguration: 'CANARY', linearConfiguration: 'LINEAR' };
  for (const [k, strategy] of Object.entries(only)) if (k in dc && dc.strategy !== strategy) e.push(`deploymentConfiguration.${k} is only valid with strategy ${strategy} (strategy is ${dc.strategy || 'not set'})`);
  const c = dc.canaryConfiguration || {}, l = dc.linearConfiguration || {};
  percent('canaryConfiguration.canaryPercent', c.canaryPercent, RANGES.canaryPercent);
  minutes('canaryConfiguration.canaryBakeTimeInMinutes', c.canaryBakeTimeInMinutes, RANGES.canaryBakeTimeInMinutes);
  percent('linearConfiguration.stepPercent', l.stepPercent, RANGES.stepPercent);
  minutes('linearConfiguration.stepBakeTimeInMinutes', l.stepBakeTimeInMinutes, RANGES.stepBakeTimeInMinutes);
  if (typeof dc.bakeTimeInMinutes === 'number' && !(Number.isInteger(dc.bakeTimeInMinutes) && dc.bakeTimeInMinutes >= 0)) e.push(`bakeTimeInMinutes ${dc.bakeTimeInMinutes} is not a whole number >= 0`);
  if (dc.alarms && dc.alarms.rollback === true && dc.alarms.enable !== true) e.push('alarms: rollback on alarm needs enable true');
  return e;
}
const updateErrors = (doc) => validateOp('UpdateService', doc).concat(strategyRules(doc.deploymentConfiguration));

// ------------------------------------------------------------------ X-Ray tracing (deploy.sh --tracing)
// deploy.sh --tracing appends task-definitions/xray-daemon.json to the containers of every task
// definition it registers and gives the first container (the daemon) XRAY_TRACING=1 and
// AWS_XRAY_DAEMON_ADDRESS. The rules for such a task definition: the sidecar is last, AWS's
// public image at a pinned version, not essential, UDP 2000, logs to the task's own log group,
// and the containers together leave the Service Connect proxy its 64 MiB and its 256 CPU units
// less the sidecar's 32 (AWS's example value; a deliberate trade, docs/tracing.md#the-sidecar).
const XRAY_CPU = 32;
const XRAY_IMAGE = /^public\.ecr\.aws\/xray\/aws-xray-daemon:\d+\.\d+\.\d+$/;
function tracingRules(t) {
  const e = [];
  const cs = t.containerDefinitions || [], app = cs[0] || {}, x = cs.find((c) => c.name === 'xray-daemon') || {};
  if (cs.filter((c) => c.name === 'xray-daemon').length !== 1 || cs[cs.length - 1] !== x || app === x) e.push('the last container must be the one xray-daemon');
  if (!XRAY_IMAGE.test(x.image || '')) e.push(`xray-daemon image ${x.image} is not public.ecr.aws/xray/aws-xray-daemon at a pinned X.Y.Z version`);
  if (x.essential !== false) e.push('xray-daemon must be essential: false (a daemon that stops must not stop the task)');
  if (app.essential !== true) e.push('the first container must stay essential');
  if (JSON.stringify(x.portMappings) !== JSON.stringify([{ containerPort: 2000, protocol: 'udp' }])) e.push('xray-daemon portMappings must be exactly UDP 2000');
  const lc = x.logConfiguration || {}, alc = app.logConfiguration || {}, o = lc.options || {};
  if (lc.logDriver !== 'awslogs' || o['awslogs-group'] !== (alc.options || {})['awslogs-group'] || o['awslogs-region'] !== (alc.options || {})['awslogs-region'] || o['awslogs-stream-prefix'] !== 'xray') e.push('xray-daemon must log with awslogs to the first container\'s group and region, stream prefix xray');
  if (x.readonlyRootFilesystem !== true) e.push('xray-daemon readonlyRootFilesystem must be true');
  const xenv = Object.fromEntries((x.environment || []).map((v) => [v.name, v.value]));
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(xenv.AWS_REGION || '') || xenv.AWS_REGION !== o['awslogs-region']) e.push('xray-daemon needs AWS_REGION, the task\'s region');
  const env = Object.fromEntries((app.environment || []).map((v) => [v.name, v.value]));
  if (env.XRAY_TRACING !== '1') e.push(`${app.name}: XRAY_TRACING must be 1`);
  if (env.AWS_XRAY_DAEMON_ADDRESS !== '127.0.0.1:2000') e.push(`${app.name}: AWS_XRAY_DAEMON_ADDRESS must be 127.0.0.1:2000`);
  const cpu = cs.reduce((n, c) => n + Number(c.cpu || 0), 0), mem = cs.reduce((n, c) => n + Number(c.memoryReservation || c.memory || 0), 0);
  if ((x.cpu || 0) > XRAY_CPU) e.push(`xray-daemon reserves ${x.cpu} CPU units, more than ${XRAY_CPU}`);
  if (Number(t.cpu) - cpu < 256 - XRAY_CPU) e.push(`containers take ${cpu} of ${t.cpu} CPU units: less than ${256 - XRAY_CPU} left for the Service Connect proxy`);
  if (Number(t.memory) - mem < 64) e.push(`containers reserve ${mem} of ${t.memory} MiB: less than 64 MiB left for the Service Connect proxy`);
  return e;
}
// deploy/iam/xray-policy.json: the two actions the daemon calls, on "*", nothing else.
function xrayPolicyRules(doc) {
  const e = [];
  if ((doc.Statement || []).length !== 1) e.push('one statement expected');
  const st = (doc.Statement || [])[0] || {};
  if (st.Effect !== 'Allow') e.push('Effect must be Allow');
  if (JSON.stringify([].concat(st.Action || []).sort()) !== '["xray:PutTelemetryRecords","xray:PutTraceSegments"]') e.push(`Action must be exactly xray:PutTraceSegments and xray:PutTelemetryRecords (got ${[].concat(st.Action || [])})`);
  if (JSON.stringify([].concat(st.Resource || [])) !== '["*"]') e.push('Resource must be "*" (the actions have no resource-level permissions)');
  if ('Condition' in st || 'NotAction' in st || 'NotResource' in st) e.push('no Condition, NotAction or NotResource expected');
  return e;
}

// ------------------------------------------------------------------ captured inputs mode
// --captured DIR [--strategy-negatives]: every input the aws stub captured; update-service
// inputs with a deployment strategy also against the documented ranges. With
// --strategy-negatives, the first captured CANARY and LINEAR updates (deploy.sh rollout's own
// JSON) are mutated and each mutation must be rejected for its own reason.
if (process.argv[2] === '--captured') {
  const dir = process.argv[3];
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
  if (!files.length) check(`captured inputs in ${dir}`, ['none captured']);
  const byStrategy = {};
  for (const f of files) {
    const op = f.includes('register-task-definition') ? 'RegisterTaskDefinition' : f.includes('create-service') ? 'CreateService' : f.includes('update-service') ? 'UpdateService' : null;
    const doc = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    check(`captured ${f} is a valid ${op}Request`, op ? validateOp(op, doc) : ['unknown operation']);
    const strategy = op === 'UpdateService' && doc.deploymentConfiguration && doc.deploymentConfiguration.strategy;
    if (strategy) {
      check(`captured ${f}: ${strategy} settings within the ranges the model documents`, strategyRules(doc.deploymentConfiguration));
      byStrategy[strategy] = byStrategy[strategy] || doc;
    }
  }
  if (process.argv[4] === '--tracing') {
    const tds = files.filter((f) => f.includes('register-task-definition')).map((f) => [f, JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))]);
    if (!tds.length) check(`captured task definitions in ${dir}`, ['none captured']);
    for (const [f, t] of tds) check(`captured ${f} (${t.family}) has the X-Ray daemon sidecar and follows the tracing rules`, tracingRules(t));
    const base = (tds.find(([, t]) => t.family === 'scdemo-caller') || [])[1];
    if (base) {
      // Each mutation of deploy.sh's own output must be rejected, by the model or by the rules, for its own reason.
      const mut = (f) => { const x = clone(base); f(x, x.containerDefinitions[x.containerDefinitions.length - 1]); return validateOp('RegisterTaskDefinition', x).concat(tracingRules(x)); };
      expectRejected('sidecar with protocol UDP (the enum is lower case)', mut((t, x) => { x.portMappings[0].protocol = 'UDP'; }), /portMappings\[0\]\.protocol: 'UDP' is not one of tcp, udp$|portMappings must be exactly UDP 2000$/);
      expectRejected('sidecar on TCP 2000', mut((t, x) => { x.portMappings[0].protocol = 'tcp'; }), /portMappings must be exactly UDP 2000$/);
      expectRejected('sidecar image :latest', mut((t, x) => { x.image = 'public.ecr.aws/xray/aws-xray-daemon:latest'; }), /is not public\.ecr\.aws\/xray\/aws-xray-daemon at a pinned X\.Y\.Z version$/);
      expectRejected('sidecar essential', mut((t, x) => { x.essential = true; }), /must be essential: false/);
      expectRejected('sidecar reserving 256 MiB (the proxy keeps less than 64)', mut((t, x) => { x.memoryReservation = 256; }), /less than 64 MiB left for the Service Connect proxy$/);
      expectRejected('sidecar reserving 64 CPU units', mut((t, x) => { x.cpu = 64; }), /xray-daemon reserves 64 CPU units, more than 32$|less than 224 left for the Service Connect proxy$/);
      expectRejected('sidecar memoryReservation as a string', mut((t, x) => { x.memoryReservation = '64'; }), /memoryReservation: expected a number, got string$/);
      expectRejected('sidecar logging elsewhere', mut((t, x) => { x.logConfiguration.options['awslogs-group'] = '/ecs/scdemo/xray'; }), /must log with awslogs to the first container's group/);
      expectRejected('daemon without XRAY_TRACING', mut((t) => { t.containerDefinitions[0].environment = t.containerDefinitions[0].environment.filter((v) => v.name !== 'XRAY_TRACING'); }), /XRAY_TRACING must be 1$/);
      expectRejected('daemon sending to the wrong port', mut((t) => { t.containerDefinitions[0].environment.find((v) => v.name === 'AWS_XRAY_DAEMON_ADDRESS').value = '127.0.0.1:2001'; }), /AWS_XRAY_DAEMON_ADDRESS must be 127\.0\.0\.1:2000$/);
      expectRejected('sidecar not last (a container after it)', mut((t) => { t.containerDefinitions.push({ name: 'extra', image: 'public.ecr.aws/docker/library/busybox:1.36', essential: false, cpu: 0, memory: 16 }); }), /the last container must be the one xray-daemon$/);
      expectRejected('two xray-daemon containers', mut((t, x) => { t.containerDefinitions.push(clone(x)); }), /the last container must be the one xray-daemon$|less than 64 MiB left|less than 224 left/);
    } else check('captured a traced scdemo-caller task definition', ['none']);
  }
  if (process.argv[4] === '--strategy-negatives') {
    const canary = byStrategy.CANARY, linear = byStrategy.LINEAR;
    check('captured a CANARY and a LINEAR update-service input from deploy.sh rollout', [canary ? [] : ['no CANARY update'], linear ? [] : ['no LINEAR update']].flat());
    if (canary && linear) {
      check('deploy.sh rollout canary update is valid with the documented ranges', updateErrors(canary));
      check('deploy.sh rollout linear update is valid with the documented ranges', updateErrors(linear));
      const mut = (doc, f) => { const x = clone(doc); f(x.deploymentConfiguration); return updateErrors(x); };
      expectRejected('canaryPercent 0 (below the documented 0.1)', mut(canary, (d) => { d.canaryConfiguration.canaryPercent = 0; }), /canaryPercent 0 is not a multiple of 0\.1 from 0\.1 to 100$/);
      expectRejected('canaryPercent 100.5 (above 100)', mut(canary, (d) => { d.canaryConfiguration.canaryPercent = 100.5; }), /canaryPercent 100\.5 is not a multiple of 0\.1 from 0\.1 to 100$/);
      expectRejected('canaryPercent 12.34 (not a multiple of 0.1)', mut(canary, (d) => { d.canaryConfiguration.canaryPercent = 12.34; }), /canaryPercent 12\.34 is not a multiple of 0\.1/);
      expectRejected('canaryBakeTimeInMinutes 1441 (above 24 hours)', mut(canary, (d) => { d.canaryConfiguration.canaryBakeTimeInMinutes = 1441; }), /canaryBakeTimeInMinutes 1441 is not a whole number from 0 to 1440$/);
      expectRejected('canaryPercent as a string', mut(canary, (d) => { d.canaryConfiguration.canaryPercent = '10'; }), /canaryConfiguration\.canaryPercent: expected a number, got string$/);
      expectRejected('linearConfiguration under CANARY', mut(canary, (d) => { d.linearConfiguration = clone(linear.deploymentConfiguration.linearConfiguration); }), /linearConfiguration is only valid with strategy LINEAR \(strategy is CANARY\)$/);
      expectRejected('canaryConfiguration under LINEAR', mut(linear, (d) => { d.canaryConfiguration = clone(canary.deploymentConfiguration.canaryConfiguration); }), /canaryConfiguration is only valid with strategy CANARY \(strategy is LINEAR\)$/);
      expectRejected('unknown strategy WEIGHTED (no strategy settings)', mut(canary, (d) => { d.strategy = 'WEIGHTED'; delete d.canaryConfiguration; }), /deploymentConfiguration\.strategy: 'WEIGHTED' is not one of BLUE_GREEN, CANARY, LINEAR, ROLLING$/);
      expectRejected('stepPercent 2.9 (below the documented 3)', mut(linear, (d) => { d.linearConfiguration.stepPercent = 2.9; }), /stepPercent 2\.9 is not a multiple of 0\.1 from 3 to 100$/);
      expectRejected('stepBakeTimeInMinutes 1.5 (not whole minutes)', mut(linear, (d) => { d.linearConfiguration.stepBakeTimeInMinutes = 1.5; }), /stepBakeTimeInMinutes 1\.5 is not a whole number from 0 to 1440$/);
      expectRejected('alarms with rollback but not enabled', mut(canary, (d) => { d.alarms = { alarmNames: ['scdemo-responder-5xx'], enable: false, rollback: true }; }), /alarms: rollback on alarm needs enable true$/);
      expectRejected('alarms without alarmNames', mut(canary, (d) => { d.alarms = { enable: true, rollback: true }; }), /alarms: missing required member 'alarmNames'$/);
    }
  }
  process.exit(failed ? 1 : 0);
}

// ------------------------------------------------------------------ sanity of the validator
check(`model is @aws-sdk/client-ecs ${PKG.version}: ECS 2014-11-13 with Service Connect timeout and tls`, (() => {
  const e = [];
  if (!/apiVersion: "2014-11-13"/.test(fs.readFileSync(path.join(PKG_DIR, 'dist-cjs', 'index.js'), 'utf8'))) e.push('dist-cjs/index.js: no apiVersion "2014-11-13"');
  for (const op of OPS) if (!Array.isArray(ecs[op + '$']) || ecs[op + '$'][0] !== 9 || ecs[op + '$'][1] !== 'com.amazonaws.ecs') e.push(`no operation schema ${op}$ in com.amazonaws.ecs`);
  const scs = shape(ecs.ServiceConnectService$);
  for (const m of ['portName', 'discoveryName', 'clientAliases', 'ingressPortOverride', 'timeout', 'tls']) if (!scs.names.includes(m)) e.push(`ServiceConnectService lacks ${m}`);
  if (!shape(ecs.ServiceConnectTlsConfiguration$).required.includes('issuerCertificateAuthority')) e.push('tls.issuerCertificateAuthority should be required');
  if (!(tsEnums.NetworkMode || []).includes('awsvpc')) e.push('NetworkMode enum not found');
  return e;
})());
check('model has the deployment strategies LINEAR and CANARY and the newer Service Connect members', (() => {
  const e = [];
  if (!['ROLLING', 'BLUE_GREEN', 'LINEAR', 'CANARY'].every((v) => (tsEnums.DeploymentStrategy || []).includes(v))) e.push(`DeploymentStrategy: ${tsEnums.DeploymentStrategy}`);
  const dc = shape(ecs.DeploymentConfiguration$).names;
  for (const m of ['strategy', 'bakeTimeInMinutes', 'linearConfiguration', 'canaryConfiguration']) if (!dc.includes(m)) e.push(`DeploymentConfiguration lacks ${m}`);
  if (String(shape(ecs.CanaryConfiguration$).names) !== 'canaryPercent,canaryBakeTimeInMinutes') e.push('CanaryConfiguration members');
  if (String(shape(ecs.LinearConfiguration$).names) !== 'stepPercent,stepBakeTimeInMinutes') e.push('LinearConfiguration members');
  if (!shape(ecs.ServiceConnectConfiguration$).names.includes('accessLogConfiguration')) e.push('ServiceConnectConfiguration lacks accessLogConfiguration');
  if (!shape(ecs.ServiceConnectClientAlias$).names.includes('testTrafficRules')) e.push('ServiceConnectClientAlias lacks testTrafficRules');
  return e;
})());
// The schemas and the .d.ts are two renderings of one model: every structure and union the
// package exports must have the same members in both, the same required ones, member types of
// the same kind, and every enum a member names must exist with the runtime object's values.
// This is also what makes the required counts (schemas) and the enums (.d.ts) trustworthy.
const KIND_OF_TS = { string: 'string', number: 'number', boolean: 'boolean', Date: 'timestamp', Uint8Array: 'blob', __DocumentType: 'document' };
function tsKind(ts) {
  if (listOf(ts)) return 'list';
  if (mapOf(ts)) return 'map';
  if (KIND_OF_TS[ts]) return KIND_OF_TS[ts];
  if (tsEnums[ts]) return typeof tsEnums[ts][0] === 'number' ? 'number' : 'string';
  if (tsShapes[ts]) return 'structure or union';
  return `unknown type ${ts}`;
}
function sameKind(ref, ts) {
  const sh = shape(ref), k = tsKind(ts);
  if (sh.kind === 'list' || sh.kind === 'map') return k === sh.kind && sameKind(sh.kind === 'list' ? sh.member : sh.value, sh.kind === 'list' ? listOf(ts) : mapOf(ts));
  if (sh.kind === 'structure' || sh.kind === 'union') return k === 'structure or union' && sh.name === ts;
  return k === sh.kind;
}
const exported = Object.keys(ecs).filter((k) => k.endsWith('$') && Array.isArray(ecs[k]) && (ecs[k][0] === 3 || ecs[k][0] === 4));
check(`schemas (dist-cjs) and .d.ts agree: members, required, kinds, enums (${exported.length} structures and unions, ${Object.keys(tsEnums).length} enums)`, (() => {
  const e = [];
  let required = 0;
  for (const k of exported) {
    const sh = shape(ecs[k]), ts = tsShapes[sh.name];
    if (k !== sh.name + '$') e.push(`${k} names ${sh.name}`);
    if (!ts) { e.push(`${sh.name}: no interface in the .d.ts`); continue; }
    if (String(Object.keys(ts).sort()) !== String([...sh.names].sort())) e.push(`${sh.name}: members ${sh.names} vs .d.ts ${Object.keys(ts)}`);
    const tsRequired = Object.keys(ts).filter((m) => !ts[m].optional);
    if (String(tsRequired.sort()) !== String([...sh.required].sort())) e.push(`${sh.name}: required ${sh.required} vs .d.ts ${tsRequired}`);
    required += sh.required.length;
    sh.names.forEach((m, i) => { if (ts[m] && !sameKind(sh.members[i], ts[m].type)) e.push(`${sh.name}.${m}: schema ${shape(sh.members[i]).kind} vs .d.ts ${ts[m].type}`); });
  }
  if (required < 100) e.push(`only ${required} required members: is the required count still in the schemas?`);
  for (const [name, values] of Object.entries(tsEnums)) {
    if (!values.length) e.push(`enum ${name} has no values`);
    if (jsType(ecs[name]) !== 'object' || String(Object.values(ecs[name]).sort()) !== String([...values].sort())) e.push(`enum ${name}: enums.d.ts and the runtime object differ`);
  }
  for (const op of OPS) if (!tsShapes[op + 'Request']) e.push(`no interface ${op}Request`);
  return e;
})());

// ------------------------------------------------------------------ the templates
const td = { caller: fill('task-definitions/caller.json'), responder: fill('task-definitions/responder.json') };
const svc = { caller: fill('deploy/services/caller.json'), responder: fill('deploy/services/responder.json') };
for (const s of ['caller', 'responder']) {
  check(`task-definitions/${s}.json is a valid RegisterTaskDefinitionRequest`, validateOp('RegisterTaskDefinition', td[s]));
  check(`deploy/services/${s}.json is a valid CreateServiceRequest`, validateOp('CreateService', svc[s]));
}
for (const f of ['tls.json', 'tls-kms.json']) {
  const tls = fill(`deploy/services/${f}`);
  check(`deploy/services/${f} is a valid ServiceConnectTlsConfiguration`, validateAt('CreateService', ['serviceConnectConfiguration', 'services', '0', 'tls'], tls));
  const withTls = clone(svc.responder);
  withTls.serviceConnectConfiguration.services[0].tls = tls;
  check(`responder service with ${f} is a valid CreateServiceRequest`, validateOp('CreateService', withTls));
}

// ------------------------------------------------------------------ project rules
function rules(name, t, mtls) {
  const e = [];
  const c = t.containerDefinitions[0];
  const cpu = Number(t.cpu), mem = Number(t.memory);
  const fargate = { 256: [512, 1024, 2048], 512: [1024, 2048, 3072, 4096], 1024: [2048, 3072, 4096, 5120, 6144, 7168, 8192] };
  if (!fargate[cpu] || !fargate[cpu].includes(mem)) e.push(`cpu ${t.cpu} / memory ${t.memory} is not a Fargate size this project expects`);
  if (cpu - (c.cpu || 0) < 256) e.push('task cpu leaves less than 256 units for the Service Connect proxy');
  if (mem - (c.memory || c.memoryReservation || 0) < 64) e.push('task memory leaves less than 64 MiB for the Service Connect proxy');
  if (t.networkMode !== 'awsvpc' || JSON.stringify(t.requiresCompatibilities) !== '["FARGATE"]') e.push('not Fargate/awsvpc');
  const pm = c.portMappings || [];
  if (!mtls && !(pm.length === 1 && pm[0].name === 'http' && pm[0].containerPort === 5000 && pm[0].appProtocol === 'http')) e.push('portMappings must be one {name: http, containerPort: 5000, appProtocol: http}');
  // With mutual TLS the proxy carries TLS it cannot read: no appProtocol, i.e. TCP.
  if (mtls && !(pm.length === 1 && pm[0].name === 'http' && pm[0].containerPort === 5000 && !('appProtocol' in pm[0]))) e.push('portMappings must be one {name: http, containerPort: 5000} without appProtocol');
  const hc = c.healthCheck || {};
  if (JSON.stringify(hc.command) !== JSON.stringify(['CMD', `/usr/local/bin/${name}`, '--healthcheck'])) e.push('healthCheck must run the daemon with --healthcheck');
  if (!(hc.interval >= 5 && hc.interval <= 300 && hc.timeout >= 2 && hc.timeout <= 60 && hc.retries >= 1 && hc.retries <= 10 && hc.startPeriod >= 0 && hc.startPeriod <= 300)) e.push('healthCheck values outside the ranges ECS accepts');
  if (c.logConfiguration.logDriver !== 'awslogs') e.push('log driver must be awslogs');
  if (!/^10001(:|$)/.test(c.user || '')) e.push('user must be uid 10001');
  if (c.readonlyRootFilesystem !== true) e.push('readonlyRootFilesystem must be true');
  const env = Object.fromEntries((c.environment || []).map((x) => [x.name, x.value]));
  const drain = Number(env.DRAIN_TIMEOUT_MS || 10000) / 1000;
  if (!(c.stopTimeout > drain && c.stopTimeout <= 120)) e.push(`stopTimeout ${c.stopTimeout} must exceed the ${drain}s drain and be at most 120`);
  const url = mtls ? 'https://responder:5000' : 'http://responder:5000';
  if (name === 'caller' && env.RESPONDER_URL !== url) e.push(`caller needs RESPONDER_URL=${url}`);
  return e;
}
for (const s of ['caller', 'responder']) check(`task-definitions/${s}.json follows the project rules`, rules(s, td[s]));
check('responder service is client-server with discoveryName/clientAliases/timeouts', (() => {
  const sc = svc.responder.serviceConnectConfiguration, e = [];
  const s = (sc.services || [])[0] || {};
  if (s.portName !== 'http' || s.discoveryName !== 'responder') e.push('portName http / discoveryName responder');
  if (JSON.stringify(s.clientAliases) !== JSON.stringify([{ port: 5000, dnsName: 'responder' }])) e.push('clientAliases');
  if (!s.timeout || !Number.isInteger(s.timeout.idleTimeoutSeconds) || !Number.isInteger(s.timeout.perRequestTimeoutSeconds)) e.push('explicit timeouts');
  if (!sc.logConfiguration) e.push('proxy logConfiguration');
  return e;
})());
for (const s of ['caller', 'responder']) {
  check(`${s} service: public IP, circuit breaker with rollback, ECS Exec, Service Connect logs`, (() => {
    const x = svc[s], e = [];
    if (x.networkConfiguration.awsvpcConfiguration.assignPublicIp !== 'ENABLED') e.push('assignPublicIp');
    const cb = x.deploymentConfiguration.deploymentCircuitBreaker;
    if (!cb || !cb.enable || !cb.rollback) e.push('circuit breaker');
    if (x.enableExecuteCommand !== true) e.push('enableExecuteCommand');
    if (!x.serviceConnectConfiguration.enabled || !x.serviceConnectConfiguration.logConfiguration) e.push('serviceConnectConfiguration');
    return e;
  })());
}
check('task definitions carry a task role (ECS Exec) and an execution role', [td.caller, td.responder].flatMap((t) => (t.taskRoleArn && t.executionRoleArn ? [] : [`${t.family} lacks a role`])));

// IAM documents: valid JSON once filled, and "Resource": "*" only where the statement says the
// action has no resource-level permissions.
for (const f of fs.readdirSync(path.join(ROOT, 'deploy', 'iam')).sort()) {
  check(`deploy/iam/${f} names its resources`, (() => {
    const doc = fill(`deploy/iam/${f}`), e = [];
    if (doc.Version !== '2012-10-17') e.push('Version');
    for (const st of doc.Statement) {
      const res = [].concat(st.Resource || []);
      if (res.includes('*') && !/HasNoResourceLevelPermissions$/.test(st.Sid || '')) e.push(`statement ${st.Sid || '?'} uses Resource "*"`);
    }
    return e;
  })());
}

// The X-Ray daemon sidecar (deploy.sh --tracing) on its own: a valid container definition, and
// the policy for it. deploy.sh's rendered task definitions with it are checked with --captured
// DIR --tracing (tests/deploy/run.sh).
{
  const x = fill('task-definitions/xray-daemon.json');
  check('task-definitions/xray-daemon.json is a valid ContainerDefinition', validateAt('RegisterTaskDefinition', ['containerDefinitions', '0'], x));
  const withX = clone(td.caller);
  withX.containerDefinitions.push(x);
  check('task-definitions/caller.json with task-definitions/xray-daemon.json appended is a valid RegisterTaskDefinitionRequest', validateOp('RegisterTaskDefinition', withX));
  check('deploy/iam/xray-policy.json: xray:PutTraceSegments and xray:PutTelemetryRecords on "*" only', xrayPolicyRules(fill('deploy/iam/xray-policy.json')));
  const pol = fill('deploy/iam/xray-policy.json');
  expectRejected('X-Ray policy with xray:*', xrayPolicyRules((() => { const p = clone(pol); p.Statement[0].Action = ['xray:*']; return p; })()), /Action must be exactly/);
  expectRejected('X-Ray policy with a third action (xray:GetSamplingRules)', xrayPolicyRules((() => { const p = clone(pol); p.Statement[0].Action.push('xray:GetSamplingRules'); return p; })()), /Action must be exactly/);
  expectRejected('X-Ray policy with a second statement', xrayPolicyRules((() => { const p = clone(pol); p.Statement.push(clone(p.Statement[0])); return p; })()), /one statement expected$/);
  expectRejected('xray-daemon.json with protocol "UDP"', validateAt('RegisterTaskDefinition', ['containerDefinitions', '0'], (() => { const y = clone(x); y.portMappings[0].protocol = 'UDP'; return y; })()), /protocol: 'UDP' is not one of tcp, udp$/);
}

// ------------------------------------------------------------------ the mutual TLS variant (MTLS=1)
// task-definitions/*-mtls.json fill the daemons' *_PEM settings from one Secrets Manager secret
// per service, through "secrets" with valueFrom ARN:JSON_KEY:: (version stage and id left
// empty: the current version). The policy deploy/iam/mtls-secrets-policy.json must name the
// same two secrets and nothing else.
const MTLS_SECRETS = {
  caller: ['TLS_CERT_PEM', 'TLS_KEY_PEM', 'TLS_CLIENT_CA_PEM', 'RESPONDER_CA_PEM', 'CLIENT_CERT_PEM', 'CLIENT_KEY_PEM'],
  responder: ['TLS_CERT_PEM', 'TLS_KEY_PEM', 'TLS_CLIENT_CA_PEM'],
};
const SECRET_ARN = /^arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
const tdm = { caller: fill('task-definitions/caller-mtls.json'), responder: fill('task-definitions/responder-mtls.json') };
const svcm = fill('deploy/services/responder-mtls.json');
// The secret ARNs a task definition's valueFroms name, or errors.
function mtlsSecrets(name, t) {
  const e = [], arns = new Set();
  const c = t.containerDefinitions[0];
  const got = (c.secrets || []).map((x) => x.name);
  if (JSON.stringify([...got].sort()) !== JSON.stringify([...MTLS_SECRETS[name]].sort())) e.push(`secrets must be exactly ${MTLS_SECRETS[name].join(', ')} (got ${got.join(', ') || 'none'})`);
  for (const x of c.secrets || []) {
    const m = /^(.*):([A-Za-z0-9_]+):([^:]*):([^:]*)$/.exec(x.valueFrom || '');
    if (!m || !SECRET_ARN.test(m[1])) { e.push(`${x.name}: valueFrom ${x.valueFrom} is not SECRET_ARN:JSON_KEY:: (a full secret ARN, with its 6-character suffix)`); continue; }
    if (m[2] !== x.name) e.push(`${x.name}: valueFrom reads JSON key ${m[2]}, not ${x.name}`);
    if (m[3] || m[4]) e.push(`${x.name}: valueFrom pins a version (${m[3]}${m[4]}); rotation relies on the current one`);
    arns.add(m[1]);
  }
  if (arns.size !== 1) e.push(`all secrets of ${name} must come from one secret (got ${arns.size})`);
  for (const v of c.environment || []) if (/_(PEM|FILE)$/.test(v.name)) e.push(`${v.name} is a plain environment variable; certificates come from "secrets" only`);
  return { e, arns: [...arns] };
}
// The variant minus its allowed differences must be the base task definition, so the two
// cannot drift apart.
function mtlsDrift(name, variant, base) {
  const x = clone(variant);
  const c = x.containerDefinitions[0];
  delete c.secrets;
  for (const pm of c.portMappings || []) pm.appProtocol = 'http';
  for (const v of c.environment || []) {
    if (v.name === 'RESPONDER_URL') v.value = 'http://responder:5000';
    if (v.name === 'RETRY_MAX') v.value = '0'; // the proxy cannot see (and retry) 503s inside TLS
  }
  x.tags = (x.tags || []).filter((t) => t.key !== 'MtlsCertsSha256');
  const a = JSON.stringify(x, null, 1).split('\n'), b = JSON.stringify(base, null, 1).split('\n');
  const i = a.findIndex((l, k) => l !== b[k]);
  return i < 0 && a.length === b.length ? [] : [`differs from task-definitions/${name}.json beyond secrets/appProtocol/RESPONDER_URL/RETRY_MAX/MtlsCertsSha256, near: ${a[i]} vs ${b[i]}`];
}
const mtlsArns = [];
for (const s of ['caller', 'responder']) {
  check(`task-definitions/${s}-mtls.json is a valid RegisterTaskDefinitionRequest`, validateOp('RegisterTaskDefinition', tdm[s]));
  check(`task-definitions/${s}-mtls.json follows the project rules (no appProtocol: TCP)`, rules(s, tdm[s], true));
  const r = mtlsSecrets(s, tdm[s]);
  mtlsArns.push(...r.arns);
  check(`task-definitions/${s}-mtls.json reads ${MTLS_SECRETS[s].join(', ')} from one secret as ARN:KEY::`, r.e);
  check(`task-definitions/${s}-mtls.json is task-definitions/${s}.json plus mTLS only`, mtlsDrift(s, tdm[s], td[s]));
}
check('deploy/services/responder-mtls.json is a valid CreateServiceRequest', validateOp('CreateService', svcm));
{
  const withTls = clone(svcm);
  withTls.serviceConnectConfiguration.services[0].tls = fill('deploy/services/tls.json');
  check('responder-mtls service with tls.json (Service Connect TLS on top) is a valid CreateServiceRequest', validateOp('CreateService', withTls));
}
check('deploy/services/responder-mtls.json: no perRequestTimeout (TCP), otherwise deploy/services/responder.json', (() => {
  const e = [], x = clone(svcm), t = x.serviceConnectConfiguration.services[0].timeout || {};
  if ('perRequestTimeoutSeconds' in t) e.push('perRequestTimeoutSeconds is set, but appProtocol is TCP');
  t.perRequestTimeoutSeconds = svc.responder.serviceConnectConfiguration.services[0].timeout.perRequestTimeoutSeconds;
  if (JSON.stringify(x) !== JSON.stringify(svc.responder)) e.push('differs from deploy/services/responder.json beyond the timeout');
  return e;
})());
// What the pinned model's own documentation says about the two facts the variant rests on.
check('the ECS model documents appProtocol absent = TCP, and no perRequestTimeout for TCP', (() => {
  const e = [];
  if (!/If you don't set a value for this parameter, then TCP is used/.test(dtsProse)) e.push('PortMapping.appProtocol: "then TCP is used" not found');
  if (!/perRequestTimeout can only be set if Service Connect appProtocol isn't TCP/.test(dtsProse)) e.push('TimeoutConfiguration: perRequestTimeout/TCP sentence not found');
  return e;
})());
check('deploy/iam/mtls-secrets-policy.json: GetSecretValue on exactly the secrets the task definitions read', (() => {
  const doc = fill('deploy/iam/mtls-secrets-policy.json'), e = [];
  if (doc.Statement.length !== 1) e.push('one statement expected');
  const st = doc.Statement[0] || {};
  if (st.Effect !== 'Allow' || JSON.stringify([].concat(st.Action)) !== '["secretsmanager:GetSecretValue"]') e.push('Allow secretsmanager:GetSecretValue only');
  const res = [].concat(st.Resource || []);
  for (const r of res) if (!SECRET_ARN.test(r)) e.push(`${r} is not a full secret ARN (no wildcards)`);
  if (JSON.stringify([...res].sort()) !== JSON.stringify([...new Set(mtlsArns)].sort())) e.push(`Resource ${res.join(', ')} != valueFrom secrets ${[...new Set(mtlsArns)].join(', ')}`);
  return e;
})());

// ------------------------------------------------------------------ negative tests
const tlsOk = fill('deploy/services/tls.json');
function svcWith(mut) {
  const x = clone(svc.responder);
  x.serviceConnectConfiguration.services[0].tls = clone(tlsOk);
  mut(x);
  return validateOp('CreateService', x);
}
function tdWith(mut) {
  const x = clone(td.caller);
  mut(x);
  return validateOp('RegisterTaskDefinition', x);
}
// ------------------------------------------------------------------ the current model is in use
// Members and enum values the v2 model (aws-sdk 2.1693.0) did not have: these inputs validate
// only against the newer model, and the negative tests after them only with its shapes.
const canary = (x) => Object.assign(x.deploymentConfiguration, { strategy: 'CANARY', bakeTimeInMinutes: 10, canaryConfiguration: { canaryPercent: 10, canaryBakeTimeInMinutes: 5 } });
const linear = (x) => Object.assign(x.deploymentConfiguration, { strategy: 'LINEAR', bakeTimeInMinutes: 10, linearConfiguration: { stepPercent: 25, stepBakeTimeInMinutes: 3 } });
check('service with deploymentConfiguration.strategy CANARY and canaryConfiguration is a valid CreateServiceRequest', svcWith(canary));
check('update with deploymentConfiguration.strategy LINEAR and linearConfiguration is a valid UpdateServiceRequest',
  validateOp('UpdateService', { cluster: 'scdemo', service: 'scdemo-caller', taskDefinition: SAMPLES.CALLER_TASK_DEFINITION, deploymentConfiguration: linear({ deploymentConfiguration: clone(svc.caller.deploymentConfiguration) }) }));
check('service with Service Connect accessLogConfiguration, proxy containerConfigurations and BLUE_GREEN testTrafficRules is a valid CreateServiceRequest', svcWith((x) => {
  x.deploymentConfiguration.strategy = 'BLUE_GREEN';
  x.serviceConnectConfiguration.accessLogConfiguration = { format: 'JSON', includeQueryParameters: 'ENABLED' };
  x.serviceConnectConfiguration.containerConfigurations = [{ logLevel: 'debug' }];
  x.serviceConnectConfiguration.services[0].clientAliases[0].testTrafficRules = { header: { name: 'x-scdemo-test', value: { exact: 'true' } } };
}));

expectRejected('tls.encryptionConfiguration (no such member)', svcWith((x) => { x.serviceConnectConfiguration.services[0].tls.encryptionConfiguration = { mode: 'TLS' }; }), /unknown member 'encryptionConfiguration'/);
expectRejected('serviceConnectConfiguration.encryptionConfiguration', svcWith((x) => { x.serviceConnectConfiguration.encryptionConfiguration = {}; }), /unknown member 'encryptionConfiguration'/);
expectRejected('tls.certificateArn (no such member)', svcWith((x) => { x.serviceConnectConfiguration.services[0].tls.certificateArn = 'arn:aws:acm:x'; }), /unknown member 'certificateArn'/);
expectRejected('tls.mode MUTUAL_TLS (no such member)', svcWith((x) => { x.serviceConnectConfiguration.services[0].tls.mode = 'MUTUAL_TLS'; }), /unknown member 'mode'/);
expectRejected('tls without issuerCertificateAuthority', svcWith((x) => { delete x.serviceConnectConfiguration.services[0].tls.issuerCertificateAuthority; }), /missing required member 'issuerCertificateAuthority'/);
expectRejected('service without serviceName', svcWith((x) => { delete x.serviceName; }), /missing required member 'serviceName'/);
expectRejected('Service Connect service without portName', svcWith((x) => { delete x.serviceConnectConfiguration.services[0].portName; }), /missing required member 'portName'/);
expectRejected('clientAlias without port', svcWith((x) => { delete x.serviceConnectConfiguration.services[0].clientAliases[0].port; }), /missing required member 'port'/);
expectRejected('task definition without family', tdWith((x) => { delete x.family; }), /missing required member 'family'/);
expectRejected('bad enum networkMode', tdWith((x) => { x.networkMode = 'awsvpcx'; }), /networkMode: 'awsvpcx' is not one of/);
expectRejected('bad enum appProtocol https', tdWith((x) => { x.containerDefinitions[0].portMappings[0].appProtocol = 'https'; }), /appProtocol: 'https' is not one of grpc, http, http2$/);
expectRejected('bad enum logDriver', tdWith((x) => { x.containerDefinitions[0].logConfiguration.logDriver = 'cloudwatch'; }), /logDriver: 'cloudwatch' is not one of/);
expectRejected('bad enum assignPublicIp', svcWith((x) => { x.networkConfiguration.awsvpcConfiguration.assignPublicIp = 'YES'; }), /assignPublicIp: 'YES' is not one of DISABLED, ENABLED$/);
expectRejected('wrong type: desiredCount as a string', svcWith((x) => { x.desiredCount = '1'; }), /desiredCount: expected a number, got string/);
expectRejected('wrong type: task cpu as a number', tdWith((x) => { x.cpu = 512; }), /cpu: expected a string/);
expectRejected('wrong type: enableExecuteCommand as a string', svcWith((x) => { x.enableExecuteCommand = 'true'; }), /enableExecuteCommand: expected a boolean/);
expectRejected('wrong type: timeout seconds as a string', svcWith((x) => { x.serviceConnectConfiguration.services[0].timeout.perRequestTimeoutSeconds = '5'; }), /perRequestTimeoutSeconds: expected a number, got string/);
expectRejected('wrong type: subnets as a string', svcWith((x) => { x.networkConfiguration.awsvpcConfiguration.subnets = 'subnet-0aaa'; }), /subnets: expected a list/);
expectRejected('unknown container member', tdWith((x) => { x.containerDefinitions[0].healthcheck = {}; }), /unknown member 'healthcheck'/);
expectRejected('mTLS variant with appProtocol http', rules('caller', (() => { const x = clone(tdm.caller); x.containerDefinitions[0].portMappings[0].appProtocol = 'http'; return x; })(), true), /without appProtocol/);
expectRejected('mTLS valueFrom without the trailing "::"', mtlsSecrets('responder', (() => { const x = clone(tdm.responder); x.containerDefinitions[0].secrets[0].valueFrom = SAMPLES.RESPONDER_SECRET_ARN + ':TLS_CERT_PEM'; return x; })()).e, /is not SECRET_ARN:JSON_KEY::/);
expectRejected('mTLS valueFrom with a wildcard suffix', mtlsSecrets('responder', (() => { const x = clone(tdm.responder); x.containerDefinitions[0].secrets[0].valueFrom = SAMPLES.RESPONDER_SECRET_ARN.replace(/-\w{6}$/, '-??????') + ':TLS_CERT_PEM::'; return x; })()).e, /is not SECRET_ARN:JSON_KEY::/);
expectRejected('mTLS key read from the wrong JSON key', mtlsSecrets('caller', (() => { const x = clone(tdm.caller); x.containerDefinitions[0].secrets[1].valueFrom = SAMPLES.CALLER_SECRET_ARN + ':TLS_CERT_PEM::'; return x; })()).e, /reads JSON key TLS_CERT_PEM, not TLS_KEY_PEM/);
expectRejected('mTLS variant drifting from the base', mtlsDrift('caller', (() => { const x = clone(tdm.caller); x.containerDefinitions[0].stopTimeout = 20; return x; })(), td.caller), /differs from task-definitions\/caller.json/);
expectRejected('create-only member in UpdateServiceRequest', (() => { const x = clone(svc.responder); x.service = x.serviceName; delete x.serviceName; return validateOp('UpdateService', x); })(), /unknown member '(launchType|schedulingStrategy|deploymentController|tags)'/);

expectRejected('deploymentConfiguration.strategy WEIGHTED (no such strategy)', svcWith((x) => { canary(x); x.deploymentConfiguration.strategy = 'WEIGHTED'; }), /deploymentConfiguration\.strategy: 'WEIGHTED' is not one of BLUE_GREEN, CANARY, LINEAR, ROLLING$/);
expectRejected('canaryConfiguration.canaryPercentage (no such member)', svcWith((x) => { canary(x); const c = x.deploymentConfiguration.canaryConfiguration; c.canaryPercentage = c.canaryPercent; delete c.canaryPercent; }), /canaryConfiguration: unknown member 'canaryPercentage'$/);
expectRejected('wrong type: canaryPercent as a string', svcWith((x) => { canary(x); x.deploymentConfiguration.canaryConfiguration.canaryPercent = '10'; }), /canaryConfiguration\.canaryPercent: expected a number, got string$/);
expectRejected('linearConfiguration as a list', svcWith((x) => { linear(x); x.deploymentConfiguration.linearConfiguration = [x.deploymentConfiguration.linearConfiguration]; }), /linearConfiguration: expected an object, got array$/);
expectRejected('accessLogConfiguration without format', svcWith((x) => { x.serviceConnectConfiguration.accessLogConfiguration = { includeQueryParameters: 'ENABLED' }; }), /accessLogConfiguration: missing required member 'format'$/);
expectRejected('bad enum accessLogConfiguration.format CSV', svcWith((x) => { x.serviceConnectConfiguration.accessLogConfiguration = { format: 'CSV' }; }), /accessLogConfiguration\.format: 'CSV' is not one of JSON, TEXT$/);
expectRejected('testTrafficRules header without name', svcWith((x) => { x.serviceConnectConfiguration.services[0].clientAliases[0].testTrafficRules = { header: { value: { exact: 'true' } } }; }), /testTrafficRules\.header: missing required member 'name'$/);
expectRejected('proxy containerConfigurations entry {} (a union takes exactly one member)', svcWith((x) => { x.serviceConnectConfiguration.containerConfigurations = [{}]; }), /containerConfigurations\[0\]: a union takes exactly one of logLevel, got 0$/);
expectRejected('proxy containerConfigurations setting logFormat (no such member)', svcWith((x) => { x.serviceConnectConfiguration.containerConfigurations = [{ logFormat: 'json' }]; }), /containerConfigurations\[0\]: unknown member 'logFormat'$/);
expectRejected('bad enum proxy logLevel DEBUG (the values are lower case)', svcWith((x) => { x.serviceConnectConfiguration.containerConfigurations = [{ logLevel: 'DEBUG' }]; }), /containerConfigurations\[0\]\.logLevel: 'DEBUG' is not one of debug, info$/);

process.exit(failed ? 1 : 0);
