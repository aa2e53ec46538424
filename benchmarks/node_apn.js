// Push N notifications through @parse/node-apn to one sink; print pushes/s and CPU per push.
// Run by benchmarks/peers.py: node node_apn.js <module dir> <config json>
'use strict';
const path = require('path');
const fs = require('fs');

const [moduleDir, configPath] = process.argv.slice(2);
const apn = require(path.join(moduleDir, 'node_modules', '@parse', 'node-apn'));
const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));

const options = {
  token: { key: cfg.key_pem, keyId: cfg.key_id, teamId: cfg.team_id },
  address: cfg.host,
  port: cfg.port,
  ca: fs.readFileSync(cfg.ca_file),
  production: false,
  clientCount: cfg.connections,
};
const provider = cfg.connections > 1 ? new apn.MultiProvider(options) : new apn.Provider(options);

function note() {
  const n = new apn.Notification();
  n.alert = { title: cfg.title, body: cfg.body };
  n.topic = cfg.topic;
  n.priority = 10;
  n.pushType = 'alert';
  n.expiry = cfg.expiry;
  n.collapseId = cfg.collapse_id;
  return n;
}

async function batches(total) {
  let ok = 0;
  const tokens = Array(cfg.batch).fill(cfg.token);
  for (let done = 0; done < total; done += cfg.batch) {
    const result = await provider.send(note(), tokens.slice(0, Math.min(cfg.batch, total - done)));
    ok += result.sent.length;
  }
  return ok;
}

(async () => {
  await batches(cfg.batch); // connect and warm up, as the Python side does
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const ok = await batches(cfg.pushes);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  console.log(JSON.stringify({ pushes: cfg.pushes, ok, wall_s: wall, cpu_s: cpuS }));
  provider.shutdown();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
