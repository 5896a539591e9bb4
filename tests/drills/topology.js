// Simulated hosts on this machine: one network namespace per component, each joined by a veth pair
// to a bridge that lives in a hub namespace of its own, so the host's network is never touched and
// runs in parallel cannot clash (every name carries a per-run id; addresses repeat only inside each
// run's own hub). Faults: iptables rules inside a namespace (drop or reject, one direction or both)
// and signals. netem is not available here, so no latency is injected.
"use strict";
const { execFileSync } = require("node:child_process");
const crypto = require("node:crypto");

function sh(args, { allowFail = false } = {}) {
  try {
    return execFileSync(args[0], args.slice(1), { stdio: ["ignore", "pipe", "pipe"], timeout: 10000 }).toString();
  } catch (e) {
    if (allowFail) return null;
    throw new Error(`${args.join(" ")}: ${e.stderr ? e.stderr.toString().trim() : e.message}`);
  }
}

class Topology {
  /** `names`: the hosts, e.g. ["redis", "orch0", "orch1", "worker0", "worker1", "client"]. */
  constructor(names) {
    this.id = crypto.randomBytes(3).toString("hex");  // 6 hex: interface names stay under 15 bytes
    this.hub = `pkd${this.id}-hub`;
    this.hosts = new Map();
    this.rules = [];
    names.forEach((name, i) => {
      this.hosts.set(name, { name, ns: `pkd${this.id}-${name}`, ip: `10.77.0.${10 + i}`, index: i });
    });
    this.created = [];
  }

  /** Makes the namespaces, the bridge and the veth pairs; on any failure removes what it made. */
  up() {
    try {
      sh(["ip", "netns", "add", this.hub]);
      this.created.push(this.hub);
      const inHub = (...a) => sh(["ip", "netns", "exec", this.hub, ...a]);
      inHub("ip", "link", "add", "br0", "type", "bridge");
      inHub("ip", "link", "set", "br0", "up");
      inHub("ip", "link", "set", "lo", "up");
      for (const h of this.hosts.values()) {
        sh(["ip", "netns", "add", h.ns]);
        this.created.push(h.ns);
        const peer = `pkd${this.id}h${h.index}`;  // made in the hub namespace: no name in the host's
        inHub("ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", h.ns);
        inHub("ip", "link", "set", peer, "master", "br0");
        inHub("ip", "link", "set", peer, "up");
        const inHost = (...a) => sh(["ip", "netns", "exec", h.ns, ...a]);
        inHost("ip", "addr", "add", `${h.ip}/24`, "dev", "eth0");
        inHost("ip", "link", "set", "eth0", "up");
        inHost("ip", "link", "set", "lo", "up");
      }
    } catch (e) {
      this.down();
      throw e;
    }
    return this;
  }

  /** Deletes every namespace of this run (their veths go with them). Safe to call twice. */
  down() {
    for (const ns of this.created.reverse()) sh(["ip", "netns", "del", ns], { allowFail: true });
    this.created = [];
  }

  host(name) {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  }

  ip(name) {
    return this.host(name).ip;
  }

  /** The argv prefix that runs a command inside a host: ["ip","netns","exec",NS]. */
  exec(name) {
    return ["ip", "netns", "exec", this.host(name).ns];
  }

  /**
   * Cuts `a` off from `b` with iptables in a's namespace: "both" drops what a sends to b and what a
   * receives from b; "out"/"in" one direction only. `how`: "DROP" (silence) or "REJECT" (refused
   * at once). Returns a function that removes exactly these rules (heal).
   */
  partition(a, b, { direction = "both", how = "DROP" } = {}) {
    const ns = this.host(a).ns;
    const peer = this.ip(b);
    const target = how === "REJECT" ? ["REJECT", "--reject-with", "tcp-reset"] : ["DROP"];
    const specs = [];
    if (direction === "both" || direction === "out") specs.push(["OUTPUT", "-d", peer]);
    if (direction === "both" || direction === "in") specs.push(["INPUT", "-s", peer]);
    const added = [];
    for (const [chain, flag, addr] of specs) {
      const rule = how === "REJECT" ? [chain, flag, addr, "-p", "tcp", "-j", ...target] : [chain, flag, addr, "-j", ...target];
      sh(["ip", "netns", "exec", ns, "iptables", "-w", "-A", ...rule]);
      added.push(rule);
    }
    const entry = { ns, added };
    this.rules.push(entry);
    return () => {
      for (const rule of entry.added) sh(["ip", "netns", "exec", ns, "iptables", "-w", "-D", ...rule], { allowFail: true });
      entry.added = [];
    };
  }

  /** Packets the rules of a's namespace have dropped so far (proof that a partition bit). */
  droppedPackets(a) {
    const out = sh(["ip", "netns", "exec", this.host(a).ns, "iptables", "-w", "-L", "-v", "-n", "-x"], { allowFail: true }) || "";
    return out.split("\n").filter((l) => /\b(DROP|REJECT)\b/.test(l))
      .reduce((n, l) => n + Number(l.trim().split(/\s+/)[0] || 0), 0);
  }
}

/** Whether this machine can make namespaces and run iptables in them (root, iproute2, iptables). */
function available() {
  const t = new Topology(["probe"]);
  try {
    t.up();
    sh([...t.exec("probe"), "iptables", "-w", "-L", "-n"]);
    return { ok: true };
  } catch (e) {
    return { ok: false, why: e.message };
  } finally {
    t.down();
  }
}

module.exports = { Topology, available, sh };
