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
