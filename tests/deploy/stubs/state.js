'use strict';
// Shared state of the recording stubs (aws, docker, curl). One JSON file in $STUB_STATE_DIR,
// plus calls.log (one JSON line per invocation) and inputs/ (copies of --cli-input-json files).
const fs = require('fs');
const path = require('path');

const dir = process.env.STUB_STATE_DIR;
if (!dir) {
  process.stderr.write('stub: STUB_STATE_DIR is not set\n');
  process.exit(99);
}
const stateFile = path.join(dir, 'state.json');

function empty() {
  return {
    seq: 0,
    repos: {}, // name -> { images: [{tag, digest}] }
    logGroups: {}, // name -> { retentionInDays }
    roles: {}, // name -> { trust, inline: {name: doc}, attached: [arn], tags: {k: v} }
    namespaces: {}, // id -> { name, arn, type }
    cloudmapServices: {}, // id -> { name, namespaceId, instances: [] }
    operations: {}, // id -> { status }
    clusters: {}, // name -> { status, namespace, arn }
    securityGroups: {}, // id -> { name, vpc, tags, rules: [{id, port, cidr, group}] }
    taskDefs: {}, // family -> [ { revision, arn, status, tags: {k: v}, input } ]
    services: {}, // name -> { status, arn, taskDefinition, tags: {}, input, deployments }
    tasks: {}, // arn -> { service, eni, ip }
    docker: { images: {} }, // local tag -> id
    secrets: {}, // name -> { arn, value, tags: {k: v}, versions }
    releasingEnis: [], // [{ eni, sg, polls }]: network interfaces of deleted tasks not released yet
    counts: {}, // calls the knobs count (create-service, slr-lag)
    alarms: {}, // CloudWatch alarm name -> { arn, spec, tags: {k: v}, state }
    deployments: {}, // ECS service deployment ARN -> { service, status, polls, strategy, config, source, target, alarms }
    // also, once set: slr ('created': the ECS service-linked role), checkipCalls (curl)
  };
}

function load() {
  if (!fs.existsSync(stateFile)) return empty();
  return JSON.parse(fs.readFileSync(stateFile, 'utf8'));
}

// Written to a temporary file and renamed, so a stub running at the same time (the two ends of
// `aws ecr get-login-password | docker login`) never reads a half-written file.
function save(state) {
  const tmp = stateFile + '.' + process.pid + '.tmp';
  fs.writeFileSync(tmp, JSON.stringify(state, null, 1));
  fs.renameSync(tmp, stateFile);
}

function record(tool, argv, extra) {
  const line = JSON.stringify(Object.assign({ tool, argv }, extra || {}));
  fs.appendFileSync(path.join(dir, 'calls.log'), line + '\n');
}

function saveInput(state, label, content) {
  const inputs = path.join(dir, 'inputs');
  fs.mkdirSync(inputs, { recursive: true });
  state.seq += 1;
  const file = path.join(inputs, String(state.seq).padStart(3, '0') + '-' + label + '.json');
  fs.writeFileSync(file, content);
  return file;
}

module.exports = { dir, load, save, record, saveInput };
