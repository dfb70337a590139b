//! A second host on this machine: a network namespace joined to the root
//! one by a veth pair, so that a test can cut the path from a process in
//! it to one address while everything else still flows.
//!
//! Addresses (one subnet pair per test process):
//! - `host_a()`, `host_b()`: two addresses on the root side, for servers
//!   (brokers) that the namespace reaches through the pair;
//! - `inner()`: the namespace's own address, for a server in it that the
//!   root side reaches.

use std::process::Command;

pub struct Netns {
    pub name: String,
    net: u8,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run `ip` (Debian's iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A namespace named after `tag`; needs root (CI runs as root).
    pub fn new(tag: &str) -> Netns {
        let pid = std::process::id();
        let net = 64 + (pid % 128) as u8;
        let ns = Netns {
            name: format!("sy-{tag}-{pid}"),
            net,
        };
        let (outer, inner) = (format!("syo{pid}"), format!("syi{pid}"));
        // A namespace left by an earlier run of the same process id.
        let _ = Command::new("ip").args(["netns", "del", &ns.name]).output();
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{}/24", ns.host_a()), "dev", &outer]);
        ip(&["addr", "add", &format!("{}/24", ns.host_b()), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        exec(&["link", "set", "lo", "up"]);
        exec(&["addr", "add", &format!("{}/24", ns.inner()), "dev", &inner]);
        exec(&["link", "set", &inner, "up"]);
        exec(&["route", "add", &format!("10.{net}.1.0/24"), "dev", &inner]);
        ns
    }

    pub fn host_a(&self) -> String {
        format!("10.{}.0.1", self.net)
    }

    pub fn host_b(&self) -> String {
        format!("10.{}.1.1", self.net)
    }

    pub fn inner(&self) -> String {
        format!("10.{}.0.2", self.net)
    }

    /// Blocks every packet from the namespace to `addr`: its connections
    /// there fail and new ones are refused.
    pub fn cut(&self, addr: &str) {
        self.prohibit("add", addr);
    }

    /// Undoes [`Netns::cut`].
    pub fn mend(&self, addr: &str) {
        self.prohibit("del", addr);
    }

    fn prohibit(&self, op: &str, addr: &str) {
        let route = format!("{addr}/32");
        ip(&[
            "netns", "exec", &self.name, "ip", "route", op, "prohibit", &route,
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
