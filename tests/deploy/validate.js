'use strict';
// Validates the deployment's JSON inputs against the official Amazon ECS API model that
// ships with the npm package aws-sdk (v2): apis/ecs-2014-11-13.min.json gives the shapes
// (structures, required members, lists, maps, scalar types); clients/ecs.d.ts, generated
// from the same model, gives the member type names and the enums, which the minified model
// leaves out. Plain JavaScript, no other dependencies.
//
// Usage: node validate.js                 templates (placeholders filled with samples),
//                                         project rules, and negative tests
//        node validate.js --captured DIR  inputs the aws stub captured during stub runs
// Prints one "PASS: ..." or "FAIL: ..." line per check.
const fs = require('fs');
const path = require('path');

const HERE = __dirname;
const ROOT = path.resolve(HERE, '..', '..');
const SDK = path.join(HERE, 'node_modules', 'aws-sdk');
const model = require(path.join(SDK, 'apis', 'ecs-2014-11-13.min.json'));
const dts = fs.readFileSync(path.join(SDK, 'clients', 'ecs.d.ts'), 'utf8');

// ------------------------------------------------------------------ d.ts: names and enums
const tsInterfaces = {}; // name -> { member -> { type, optional } }
for (const m of dts.matchAll(/export interface (\w+) \{([\s\S]*?)\n {2}\}/g)) {
  const members = {};
  for (const mm of m[2].matchAll(/^ {4}(\w+)(\??): ([\w[\]]+);$/gm)) members[mm[1]] = { type: mm[3], optional: mm[2] === '?' };
  tsInterfaces[m[1]] = members;
}
const tsTypes = {}; // name -> { kind: enum|list|map|alias, ... }
for (const m of dts.matchAll(/export type (\w+) = (.+);/g)) {
  const rhs = m[2].trim();
  let t;
  if (/^("[^"]*"\|)+string$/.test(rhs)) t = { kind: 'enum', values: [...rhs.matchAll(/"([^"]*)"/g)].map((x) => x[1]) };
  else if (/^\w+\[\]$/.test(rhs)) t = { kind: 'list', member: rhs.slice(0, -2) };
  else if (/^\{\[key: string\]: \w+\}$/.test(rhs)) t = { kind: 'map', value: /: (\w+)\}$/.exec(rhs)[1] };
  else t = { kind: 'alias', to: rhs };
  tsTypes[m[1]] = t;
}

// ------------------------------------------------------------------ walking the model
function resolve(ref) {
  let shape = ref;
  while (shape && shape.shape) shape = Object.assign({}, model.shapes[shape.shape], shape.shape ? {} : {});
  return shape || {};
}
function kindOf(shape) {
  return shape.type || 'string'; // the minified model leaves "type": "string" out
}
function jsType(v) {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

// validate(value, shapeRef, tsName, path) -> list of error strings
function validate(value, ref, tsName, where) {
  const errors = [];
  const shape = resolve(ref);
  const kind = kindOf(shape);
  const ts = tsName && tsTypes[tsName];
  switch (kind) {
    case 'structure': {
      if (jsType(value) !== 'object') return [`${where}: expected an object, got ${jsType(value)}`];
      const members = shape.members || {};
      const tsMembers = tsInterfaces[tsName] || {};
      for (const req of shape.required || []) if (!(req in value)) errors.push(`${where}: missing required member '${req}'`);
      for (const [k, v] of Object.entries(value)) {
        if (!(k in members)) {
          errors.push(`${where}: unknown member '${k}'`);
          continue;
        }
        errors.push(...validate(v, members[k], tsMembers[k] && tsMembers[k].type, `${where}.${k}`));
      }
      break;
    }
    case 'list': {
      if (!Array.isArray(value)) return [`${where}: expected a list, got ${jsType(value)}`];
      const elemTs = ts && ts.kind === 'list' ? ts.member : undefined;
      value.forEach((v, i) => errors.push(...validate(v, shape.member, elemTs, `${where}[${i}]`)));
      break;
    }
    case 'map': {
      if (jsType(value) !== 'object') return [`${where}: expected a map, got ${jsType(value)}`];
      const valTs = ts && ts.kind === 'map' ? ts.value : undefined;
      for (const [k, v] of Object.entries(value)) {
        errors.push(...validate(k, shape.key || {}, undefined, `${where} key '${k}'`));
        errors.push(...validate(v, shape.value, valTs, `${where}['${k}']`));
      }
      break;
    }
    case 'string':
      if (typeof value !== 'string') return [`${where}: expected a string, got ${jsType(value)}`];
      if (ts && ts.kind === 'enum' && !ts.values.includes(value)) errors.push(`${where}: '${value}' is not one of ${ts.values.join(', ')}`);
      break;
    case 'integer':
    case 'long':
      if (!Number.isInteger(value)) errors.push(`${where}: expected an integer, got ${JSON.stringify(value)}`);
      break;
    case 'double':
    case 'float':
      if (typeof value !== 'number') errors.push(`${where}: expected a number, got ${jsType(value)}`);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') errors.push(`${where}: expected a boolean, got ${jsType(value)}`);
      break;
    case 'timestamp':
      if (typeof value !== 'string' && typeof value !== 'number') errors.push(`${where}: expected a timestamp`);
      break;
    default:
      errors.push(`${where}: validator does not handle shape type ${kind}`);
  }
  return errors;
}

const OPS = {
  RegisterTaskDefinition: 'RegisterTaskDefinitionRequest',
  CreateService: 'CreateServiceRequest',
  UpdateService: 'UpdateServiceRequest',
};
function validateOp(op, doc) {
  return validate(doc, model.operations[op].input, OPS[op], op + 'Request');
}
// A nested shape, reached by walking member names from an operation's input.
function validateAt(op, memberPath, doc) {
  let ref = model.operations[op].input;
  let tsName = OPS[op];
  for (const name of memberPath) {
    const shape = resolve(ref);
    if (shape.type === 'list') {
      ref = shape.member;
      tsName = tsTypes[tsName] && tsTypes[tsName].member;
      continue;
    }
    ref = shape.members[name];
    tsName = tsInterfaces[tsName][name].type;
  }
  return validate(doc, ref, tsName, memberPath.join('.'));
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
  FAULT_ERROR_RATE: '0',
  TLS_PCA_ARN: 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555',
  TLS_ROLE_ARN: 'arn:aws:iam::123456789012:role/scdemo-ecs-infrastructure-tls',
  TLS_KMS_KEY: 'arn:aws:kms:eu-west-1:123456789012:key/66666666-7777-8888-9999-000000000000',
  // Secrets Manager appends "-" and six random characters to the name in a secret's ARN.
  CALLER_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:scdemo/mtls/caller-AbC123',
  RESPONDER_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:scdemo/mtls/responder-xYz789',
  MTLS_CERTS_SHA256: 'd'.repeat(64),
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
function expectRejected(name, errors, pattern) {
  const hit = errors.some((e) => pattern.test(e));
  check(`rejects ${name}`, hit ? [] : [`expected an error matching ${pattern}, got: ${errors.join('; ') || 'none'}`]);
}
const clone = (o) => JSON.parse(JSON.stringify(o));

// ------------------------------------------------------------------ captured inputs mode
if (process.argv[2] === '--captured') {
  const dir = process.argv[3];
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
  if (!files.length) check(`captured inputs in ${dir}`, ['none captured']);
  for (const f of files) {
    const op = f.includes('register-task-definition') ? 'RegisterTaskDefinition' : f.includes('create-service') ? 'CreateService' : f.includes('update-service') ? 'UpdateService' : null;
    const doc = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    check(`captured ${f} is a valid ${op}Request`, op ? validateOp(op, doc) : ['unknown operation']);
  }
  process.exit(failed ? 1 : 0);
}

// ------------------------------------------------------------------ sanity of the validator
check('model is the ECS 2014-11-13 API with Service Connect timeout and tls', (() => {
  const e = [];
  if (model.metadata.apiVersion !== '2014-11-13') e.push('wrong apiVersion');
  const scs = tsInterfaces.ServiceConnectService || {};
  for (const m of ['portName', 'discoveryName', 'clientAliases', 'ingressPortOverride', 'timeout', 'tls']) if (!scs[m]) e.push(`ServiceConnectService lacks ${m}`);
  const tls = tsInterfaces.ServiceConnectTlsConfiguration || {};
  if (!tls.issuerCertificateAuthority || tls.issuerCertificateAuthority.optional) e.push('tls.issuerCertificateAuthority should be required');
  if (!tsTypes.NetworkMode || !tsTypes.NetworkMode.values.includes('awsvpc')) e.push('NetworkMode enum not found');
  // required members in the model agree with the d.ts optional markers
  for (const [op, iface] of Object.entries(OPS)) {
    const shape = resolve(model.operations[op].input);
    for (const r of shape.required || []) if (!tsInterfaces[iface][r] || tsInterfaces[iface][r].optional) e.push(`${iface}.${r} disagrees`);
  }
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
  if (!/If you don't set a value for this parameter, then TCP is used/.test(dts)) e.push('PortMapping.appProtocol: "then TCP is used" not found');
  if (!/perRequestTimeout can only be set if Service Connect appProtocol isn't TCP/.test(dts)) e.push('TimeoutConfiguration: perRequestTimeout/TCP sentence not found');
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
expectRejected('bad enum appProtocol https', tdWith((x) => { x.containerDefinitions[0].portMappings[0].appProtocol = 'https'; }), /appProtocol: 'https' is not one of http, http2, grpc/);
expectRejected('bad enum logDriver', tdWith((x) => { x.containerDefinitions[0].logConfiguration.logDriver = 'cloudwatch'; }), /logDriver: 'cloudwatch' is not one of/);
expectRejected('bad enum assignPublicIp', svcWith((x) => { x.networkConfiguration.awsvpcConfiguration.assignPublicIp = 'YES'; }), /assignPublicIp: 'YES' is not one of ENABLED, DISABLED/);
expectRejected('wrong type: desiredCount as a string', svcWith((x) => { x.desiredCount = '1'; }), /desiredCount: expected an integer/);
expectRejected('wrong type: task cpu as a number', tdWith((x) => { x.cpu = 512; }), /cpu: expected a string/);
expectRejected('wrong type: enableExecuteCommand as a string', svcWith((x) => { x.enableExecuteCommand = 'true'; }), /enableExecuteCommand: expected a boolean/);
expectRejected('wrong type: timeout seconds as a string', svcWith((x) => { x.serviceConnectConfiguration.services[0].timeout.perRequestTimeoutSeconds = '5'; }), /perRequestTimeoutSeconds: expected an integer/);
expectRejected('wrong type: subnets as a string', svcWith((x) => { x.networkConfiguration.awsvpcConfiguration.subnets = 'subnet-0aaa'; }), /subnets: expected a list/);
expectRejected('unknown container member', tdWith((x) => { x.containerDefinitions[0].healthcheck = {}; }), /unknown member 'healthcheck'/);
expectRejected('mTLS variant with appProtocol http', rules('caller', (() => { const x = clone(tdm.caller); x.containerDefinitions[0].portMappings[0].appProtocol = 'http'; return x; })(), true), /without appProtocol/);
expectRejected('mTLS valueFrom without the trailing "::"', mtlsSecrets('responder', (() => { const x = clone(tdm.responder); x.containerDefinitions[0].secrets[0].valueFrom = SAMPLES.RESPONDER_SECRET_ARN + ':TLS_CERT_PEM'; return x; })()).e, /is not SECRET_ARN:JSON_KEY::/);
expectRejected('mTLS valueFrom with a wildcard suffix', mtlsSecrets('responder', (() => { const x = clone(tdm.responder); x.containerDefinitions[0].secrets[0].valueFrom = SAMPLES.RESPONDER_SECRET_ARN.replace(/-\w{6}$/, '-??????') + ':TLS_CERT_PEM::'; return x; })()).e, /is not SECRET_ARN:JSON_KEY::/);
expectRejected('mTLS key read from the wrong JSON key', mtlsSecrets('caller', (() => { const x = clone(tdm.caller); x.containerDefinitions[0].secrets[1].valueFrom = SAMPLES.CALLER_SECRET_ARN + ':TLS_CERT_PEM::'; return x; })()).e, /reads JSON key TLS_CERT_PEM, not TLS_KEY_PEM/);
expectRejected('mTLS variant drifting from the base', mtlsDrift('caller', (() => { const x = clone(tdm.caller); x.containerDefinitions[0].stopTimeout = 20; return x; })(), td.caller), /differs from task-definitions\/caller.json/);
expectRejected('create-only member in UpdateServiceRequest', (() => { const x = clone(svc.responder); x.service = x.serviceName; delete x.serviceName; return validateOp('UpdateService', x); })(), /unknown member '(launchType|schedulingStrategy|deploymentController|tags)'/);

process.exit(failed ? 1 : 0);
