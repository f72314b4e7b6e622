//! A private Redis Cluster per test: three primaries and three replicas,
//! each a [`RedisServer`] on a free port with its cluster bus on another
//! reserved port (`--cluster-port`: port + 10000 may not exist), joined by
//! `redis-cli --cluster create … --cluster-replicas 1`.

use std::process::Command;
use std::time::{Duration, Instant};

use super::redis::RedisServer;

/// A running cluster; every node is killed when dropped.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// Reserved, never started: the nodes' bus ports.
    _bus: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut nodes = Vec::new();
        let mut bus = Vec::new();
        for _ in 0..6 {
            let bus_port = RedisServer::reserve();
            let mut node = RedisServer::reserve();
            let config = dir.path().join(format!("nodes-{}.conf", node.port));
            node.args = vec![
                // A replica writes the RDB of its full sync into `dir`.
                "--dir".into(),
                dir.path().to_string_lossy().into_owned(),
                "--dbfilename".into(),
                format!("dump-{}.rdb", node.port),
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                config.to_string_lossy().into_owned(),
                "--cluster-node-timeout".into(),
                "1000".into(),
                "--cluster-port".into(),
                bus_port.port.to_string(),
            ];
            node.restart();
            nodes.push(node);
            bus.push(bus_port);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli, installed with redis-server");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self {
            nodes,
            _bus: bus,
            _dir: dir,
        };
        cluster.wait_until_ready();
        cluster
    }

    /// Seed URLs: every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits until every live node says the cluster is ok and every
    /// replica is in sync with its primary.
    pub fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ready() {
            assert!(Instant::now() < deadline, "the cluster never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ready(&self) -> bool {
        self.live().all(|n| {
            let info = n.command("CLUSTER INFO");
            let replication = n.command("INFO replication");
            info.contains("cluster_state:ok")
                && (replication.contains("master_link_status:up")
                    || replication.contains("role:master"))
        })
    }

    fn live(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// The index of the node that serves `key` now.
    pub fn primary_of(&self, key: &str) -> usize {
        let node = self.live().next().expect("a live node");
        let reply = node.command(&format!("GET {key}"));
        let port = match reply.strip_prefix("-MOVED ") {
            Some(moved) => moved
                .split(':')
                .next_back()
                .and_then(|p| p.trim().parse().ok())
                .expect("a MOVED reply names a port"),
            None => node.port,
        };
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }

    /// Every key on the live primaries, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .live()
            .filter(|n| n.command("ROLE").contains("master"))
            .flat_map(|n| {
                n.command("KEYS *")
                    .lines()
                    .filter(|l| !l.starts_with(['*', '$']))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    }
}

/// A slot on its way from one primary to another (`MIGRATING` on the
/// source, `IMPORTING` on the target, its keys already moved): the source
/// answers `ASK` for them.
pub struct SlotMove {
    slot: u64,
    to: usize,
}

impl RedisCluster {
    /// Starts moving the slot of `key` to another primary and moves its
    /// keys, as resharding does.
    pub fn begin_move(&self, key: &str) -> SlotMove {
        let from = self.primary_of(key);
        let to = (0..self.nodes.len())
            .find(|&i| i != from && self.is_primary(i))
            .expect("another primary");
        let slot = self.nodes[from].command(&format!("CLUSTER KEYSLOT {key}"));
        let slot: u64 = slot.trim().trim_start_matches(':').parse().unwrap();
        let (from_id, to_id) = (self.id(from), self.id(to));
        let ok = |reply: String| assert!(reply.starts_with("+OK"), "{reply}");
        ok(self.nodes[to].command(&format!("CLUSTER SETSLOT {slot} IMPORTING {from_id}")));
        ok(self.nodes[from].command(&format!("CLUSTER SETSLOT {slot} MIGRATING {to_id}")));
        let keys = self.nodes[from].command(&format!("CLUSTER GETKEYSINSLOT {slot} 1000"));
        let keys: Vec<&str> = keys
            .lines()
            .filter(|l| !l.starts_with(['*', '$']))
            .collect();
        if !keys.is_empty() {
            let port = self.nodes[to].port;
            let reply = self.nodes[from].command(&format!(
                "MIGRATE 127.0.0.1 {port} \"\" 0 5000 KEYS {}",
                keys.join(" ")
            ));
            assert!(reply.starts_with("+OK"), "MIGRATE: {reply}");
        }
        SlotMove { slot, to }
    }

    /// Hands the slot to the target: the source then answers `MOVED`.
    pub fn finish_move(&self, slot_move: SlotMove) {
        let SlotMove { slot, to } = slot_move;
        let to_id = self.id(to);
        for i in (0..self.nodes.len()).filter(|&i| self.is_primary(i)) {
            let reply = self.nodes[i].command(&format!("CLUSTER SETSLOT {slot} NODE {to_id}"));
            assert!(reply.starts_with("+OK"), "{reply}");
        }
    }

    fn is_primary(&self, i: usize) -> bool {
        self.nodes[i].is_running() && self.nodes[i].command("ROLE").contains("master")
    }

    fn id(&self, i: usize) -> String {
        let reply = self.nodes[i].command("CLUSTER MYID");
        reply.lines().nth(1).expect("an id").trim().to_owned()
    }
}
