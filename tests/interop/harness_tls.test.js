// phasekit-load against TLS targets: node's https module serving socket.io with certificates from a
// private CA the test makes with openssl (a good one for 127.0.0.1 and localhost, an expired one,
// one for another name), and nginx terminating TLS in front of a plain-HTTP socket.io server.
// WebSocket, polling and polling upgraded to WebSocket must run with no error when the CA is given
// (--ca or config.tls.ca); without it every user fails as errors.tls_failed and the report says why.
// The servers also set a cookie on each handshake and count the later requests that come without
// it: the user's cookie jar must send it back, Secure over TLS.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const https = require("node:https");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { spawnListening } = require("../support/node/server_process.js");

const LOAD = process.env.HARNESS_BIN;
const SOURCE = process.env.PHASEKIT_SOURCE_DIR;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "phasekit-load-tls-"));
const started = [];  // every process this test starts, stopped by PID in after()

/** A private CA and three server certificates signed by it: good, expired, for another name. */
function makeCertificates(dir) {
  const openssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=phasekit test CA",
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  const ext = (san) => `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`;
  fs.writeFileSync(path.join(dir, "server.ext"), ext("IP:127.0.0.1,DNS:localhost"));
  fs.writeFileSync(path.join(dir, "other.ext"), ext("DNS:other.example"));
  for (const name of ["server", "expired", "other"]) {
    openssl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
  }
  openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "2", "-days", "30",
          "-extfile", "server.ext", "-out", "server.pem");
  openssl("x509", "-req", "-in", "other.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "3", "-days", "30",
          "-extfile", "other.ext", "-out", "other.pem");
  // `openssl x509` cannot date a certificate in the past; `openssl ca` can.
  fs.writeFileSync(path.join(dir, "index.txt"), "");
  fs.writeFileSync(path.join(dir, "serial"), "04\n");
  fs.writeFileSync(path.join(dir, "ca.cnf"),
                   "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n" +
                   "default_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n");
  openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-startdate", "20200101000000Z",
          "-enddate", "20200201000000Z", "-extfile", "server.ext", "-notext", "-in", "expired.csr", "-out", "expired.pem");
  return (name) => path.join(dir, name);
}

/** tests/harness/tls_server.js, over HTTPS with cert/key, or plain HTTP without. */
async function startSocketioServer(cert, key) {
  const args = [path.join(SOURCE, "tests/harness/tls_server.js")];
  if (cert) args.push("--cert", cert, "--key", key);
  const { child, entry } = await spawnListening(process.execPath, { ...process.env }, {}, 10000, "server.listening",
                                                args);
  started.push(child);
  return { port: entry.port, child };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls check() (a promise of a boolean) every 50 ms until it holds or deadlineMs passes. */
async function waitFor(what, check, deadlineMs = 10000) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within ${deadlineMs} ms`);
}

/** GET over HTTPS trusting ca; resolves the parsed JSON body. */
function getJson(port, urlPath, ca) {
  return new Promise((resolve, reject) => {
    https.get({ host: "127.0.0.1", port, path: urlPath, ca, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    }).on("error", reject);
  });
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });
}

function writeScenario(name, text) {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

function load(args) {
  const r = spawnSync(LOAD, args, { encoding: "utf8", timeout: 120000 });
  return { code: r.status, out: r.stdout, err: r.stderr, all: `${r.stdout}\n${r.stderr}` };
}

const USERS = 20;
const echoScenario = (target, transports, tls = "") => `
config:
  target: "${target}"
  phases:
    - { duration: 2, arrivalRate: ${USERS / 2} }
  socketio:
    transports: ${JSON.stringify(transports)}
${tls}  ensure:
    maxErrorRate: 0
scenarios:
  - engine: socketio
    flow:
      - loop:
          - emit: { channel: "echo", data: "{{ $randomString(6) }}" }
            acknowledge:
              match: { json: "$.0.ok", value: true }
          - think: 0.2
        count: 3
${transports.length > 1 ? `      - emit: { channel: "transport", data: "?" }
        acknowledge:
          match: { json: "$.0.transport", value: "websocket" }
` : ""}`;

/** Runs the echo scenario; returns the report (and the run's output). */
function run(name, target, transports, args = [], tls = "") {
  const file = writeScenario(`${name}.yml`, echoScenario(target, transports, tls));
  const out = path.join(tmp, `${name}.json`);
  const r = load(["run", file, "-o", out, "--quiet", ...args]);
  const report = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, "utf8")) : null;
  return { ...r, report };
}

const TRANSPORTS = [["websocket"], ["polling", "websocket"], ["polling"]];

// Last, after both suites: every process stopped, the certificates and reports removed.
after(async () => {
  await Promise.all(started.map(stop));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("phasekit-load over TLS (node https + socket.io, a private CA)", () => {
  let file;
  let good;
  let expired;
  let other;
  let ca;
  before(async () => {
    file = makeCertificates(tmp);
    ca = fs.readFileSync(file("ca.pem"));
    [good, expired, other] = await Promise.all([
      startSocketioServer(file("server.pem"), file("server.key")),
      startSocketioServer(file("expired.pem"), file("expired.key")),
      startSocketioServer(file("other.pem"), file("other.key")),
    ]);
  });
  after(async () => {
    await Promise.all(started.map(stop));
  });

  for (const transports of TRANSPORTS) {
    const label = transports.join("+");
    it(`runs ${label} with --ca: no error, the TLS handshake measured, the cookie sent back`, async () => {
      const before = await getJson(good.port, "/counts", ca);
      const r = run(`ok-${label}`, `https://127.0.0.1:${good.port}`, transports, ["--ca", file("ca.pem")]);
      assert.equal(r.code, 0, r.all);
      const c = r.report.total.counters;
      assert.equal(c["vusers.created"], USERS);
      assert.equal(c["vusers.completed"], USERS);
      // Three echoes, and with polling+websocket the wait for the upgrade.
      assert.equal(c["socketio.ack"], USERS * (transports.length > 1 ? 4 : 3));
      const tlsHandshake = r.report.total.histograms["socketio.tls_handshake"];
      assert.ok(tlsHandshake && tlsHandshake.count >= USERS, JSON.stringify(tlsHandshake && tlsHandshake.summaryMs));
      const now = await getJson(good.port, "/counts", ca);
      assert.equal(now.connections - before.connections, USERS);
      if (transports.includes("polling")) {
        // Every poll, POST (and the upgrade) of a session carried the Secure cookie its handshake set.
        assert.ok(now.sessionRequests - before.sessionRequests >= USERS * 2, JSON.stringify(now));
        assert.equal(now.cookieMissing - before.cookieMissing, 0, JSON.stringify(now));
        assert.equal(now.cookieWrong - before.cookieWrong, 0, JSON.stringify(now));
      }
      if (label === "polling+websocket") {
        assert.equal(now.upgrades - before.upgrades, USERS, "every session upgraded to WebSocket over TLS");
      }
      console.log(`${label}: tls_handshake p50 ${tlsHandshake.summaryMs.p50} ms over ${tlsHandshake.count} handshakes`);
    });
  }

  it("without --ca every user fails as errors.tls_failed: unknown CA, and the report says so", () => {
    const r = run("unknown-ca", `https://127.0.0.1:${good.port}`, ["polling", "websocket"]);
    assert.equal(r.code, 1, r.all);
    const c = r.report.total.counters;
    assert.equal(c["vusers.created"], USERS);
    assert.equal(c["errors.tls_failed"], USERS, JSON.stringify(c));
    const detail = r.report.meta.errorDetails.tls_failed;
    assert.match(detail, /certificate refused: unknown CA \((unable to get local issuer certificate|self-signed certificate)/);
    assert.match(detail, /--ca FILE/);
    assert.match(r.out, /tls_failed: TLS handshake with 127\.0\.0\.1:\d+: certificate refused: unknown CA/);
  });

  it("an expired certificate fails as tls_failed: expired", () => {
    const r = run("expired", `wss://127.0.0.1:${expired.port}`, ["websocket"], ["--ca", file("ca.pem")]);
    assert.equal(r.code, 1, r.all);
    assert.equal(r.report.total.counters["errors.tls_failed"], USERS);
    assert.match(r.report.meta.errorDetails.tls_failed, /certificate refused: expired \(certificate has expired\)/);
  });

  it("a certificate for another name fails as tls_failed: name mismatch, by address and by host name", () => {
    const byAddress = run("other-ip", `https://127.0.0.1:${other.port}`, ["websocket"], ["--ca", file("ca.pem")]);
    assert.equal(byAddress.code, 1, byAddress.all);
    assert.equal(byAddress.report.total.counters["errors.tls_failed"], USERS);
    assert.match(byAddress.report.meta.errorDetails.tls_failed,
                 /certificate refused: name mismatch \(IP address mismatch\); it does not name 127\.0\.0\.1/);
    const byName = run("other-name", `https://localhost:${other.port}`, ["polling"], ["--ca", file("ca.pem")]);
    assert.equal(byName.code, 1, byName.all);
    assert.match(byName.report.meta.errorDetails.tls_failed, /name mismatch \(hostname mismatch\); it does not name localhost/);
  });

  it("a host name is verified (and sent as SNI): https://localhost works with the CA", () => {
    const r = run("localhost", `https://localhost:${good.port}`, ["polling", "websocket"], ["--ca", file("ca.pem")]);
    assert.equal(r.code, 0, r.all);
    assert.equal(r.report.total.counters["vusers.completed"], USERS);
  });

  it("--insecure, and config.tls.rejectUnauthorized: false, connect to the unknown CA anyway", () => {
    const cli = run("insecure-cli", `https://127.0.0.1:${good.port}`, ["polling", "websocket"], ["--insecure"]);
    assert.equal(cli.code, 0, cli.all);
    assert.equal(cli.report.total.counters["vusers.completed"], USERS);
    const artillery = run("insecure-config", `https://127.0.0.1:${expired.port}`, ["websocket"], [],
                          "  tls:\n    rejectUnauthorized: false\n");
    assert.equal(artillery.code, 0, artillery.all);
  });

  it("config.tls.ca names the CA file relative to the scenario", () => {
    fs.copyFileSync(file("ca.pem"), path.join(tmp, "scenario-ca.pem"));
    const r = run("config-ca", `wss://127.0.0.1:${good.port}`, ["websocket"], [], "  tls:\n    ca: \"scenario-ca.pem\"\n");
    assert.equal(r.code, 0, r.all);
  });

  it("self-test: with --no-cookies the server sees session requests without its cookie", async () => {
    const before = await getJson(good.port, "/counts", ca);
    const r = run("no-cookies", `https://127.0.0.1:${good.port}`, ["polling"], ["--ca", file("ca.pem"), "--no-cookies"]);
    assert.equal(r.code, 0, r.all);  // this server does not need the cookie, it only counts
    const now = await getJson(good.port, "/counts", ca);
    assert.ok(now.cookieMissing - before.cookieMissing >= USERS * 2, JSON.stringify(now));
  });

  it("the TLS handshake histogram is in the HTML report too", () => {
    const r0 = run("for-html", `wss://127.0.0.1:${good.port}`, ["websocket"], ["--ca", file("ca.pem")]);
    assert.equal(r0.code, 0, r0.all);
    const html = path.join(tmp, "ok.html");
    const r = load(["report", path.join(tmp, "for-html.json"), "-o", html]);
    assert.equal(r.code, 0, r.all);
    assert.match(fs.readFileSync(html, "utf8"), /<td>socketio\.tls_handshake<\/td>/);
  });

  it("a plain-HTTP server behind an https:// target fails as tls_failed, not as a hang", async () => {
    const plain = await startSocketioServer();
    const r = run("plain", `https://127.0.0.1:${plain.port}`, ["websocket"], ["--ca", file("ca.pem")]);
    assert.equal(r.code, 1, r.all);
    assert.equal(r.report.total.counters["errors.tls_failed"], USERS, JSON.stringify(r.report.total.counters));
    assert.match(r.report.meta.errorDetails.tls_failed, /^TLS handshake with 127\.0\.0\.1:\d+: /);
  });

  it("--ca with a file that is not there, and --ca with --insecure, are usage errors (exit 2)", () => {
    const file1 = writeScenario("usage.yml", echoScenario(`https://127.0.0.1:${good.port}`, ["websocket"]));
    const missing = load(["run", file1, "--quiet", "--ca", path.join(tmp, "nope.pem")]);
    assert.equal(missing.code, 2, missing.all);
    assert.match(missing.err, /--ca .*nope\.pem: cannot read the file/);
    const both = load(["run", file1, "--quiet", "--ca", file("ca.pem"), "--insecure"]);
    assert.equal(both.code, 2, both.all);
    const notPem = load(["run", file1, "--quiet", "--ca", file("ca.cnf")]);
    assert.equal(notPem.code, 2, notPem.all);
    assert.match(notPem.err, /cannot load the CA certificates .*ca\.cnf/);
  });
});

describe("phasekit-load through nginx TLS termination", () => {
  let file;
  let nginx;
  let port;
  let backend;
  before(async () => {
    const dir = fs.mkdtempSync(path.join(tmp, "nginx-"));
    file = makeCertificates(dir);
    backend = await startSocketioServer();  // plain HTTP behind nginx
    port = await freePort();
    const prefix = path.join(dir, "prefix");
    fs.mkdirSync(prefix);
    fs.writeFileSync(path.join(prefix, "nginx.conf"), `
daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; "" ""; }
  upstream socketio { server 127.0.0.1:${backend.port}; keepalive 16; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${file("server.pem")};
    ssl_certificate_key ${file("server.key")};
    location / {
      proxy_pass http://socketio;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 60s;
    }
  }
}
`);
    nginx = spawn("nginx", ["-p", prefix, "-c", path.join(prefix, "nginx.conf"), "-e", path.join(prefix, "error.log")],
                  { stdio: ["ignore", "inherit", "inherit"] });
    started.push(nginx);
    const ca = fs.readFileSync(file("ca.pem"));
    await waitFor("nginx answers over TLS", async () => (await getJson(port, "/counts", ca)).connections !== undefined);
  });
  after(async () => {
    await Promise.all(started.map(stop));
  });

  for (const transports of TRANSPORTS) {
    const label = transports.join("+");
    it(`runs ${label} through nginx with --ca: no error`, async () => {
      const ca = fs.readFileSync(file("ca.pem"));
      const before = await getJson(port, "/counts", ca);
      const r = run(`nginx-${label}`, `https://127.0.0.1:${port}`, transports, ["--ca", file("ca.pem")]);
      assert.equal(r.code, 0, r.all);
      assert.equal(r.report.total.counters["vusers.completed"], USERS);
      assert.ok(r.report.total.histograms["socketio.tls_handshake"].count >= USERS);
      const now = await getJson(port, "/counts", ca);
      assert.equal(now.connections - before.connections, USERS);
      assert.equal(now.cookieMissing - before.cookieMissing, 0, JSON.stringify(now));
      if (label === "polling+websocket") {
        assert.equal(now.upgrades - before.upgrades, USERS, "every session upgraded through nginx");
      }
    });
  }

  it("without --ca, nginx's certificate is refused: unknown CA", () => {
    const r = run("nginx-unknown-ca", `https://127.0.0.1:${port}`, ["websocket"]);
    assert.equal(r.code, 1, r.all);
    assert.equal(r.report.total.counters["errors.tls_failed"], USERS);
    assert.match(r.report.meta.errorDetails.tls_failed, /unknown CA/);
  });
});
