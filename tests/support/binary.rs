//! The real `credgate` binary as a child process: for signals, exit codes and
//! the command line.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn credgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_credgate"))
}

/// A running `credgate serve`; killed when dropped.
pub struct Process {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The cleartext listener, when configured.
    pub plain: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    /// Reads stderr until it closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Starts `credgate serve --config PATH` and waits for its `listening`
    /// log line, which carries the bound addresses (JSON or text logs).
    pub fn serve(config: &Path) -> Self {
        Self::serve_with_env(config, &[])
    }

    /// [`Process::serve`] with extra environment variables.
    pub fn serve_with_env(config: &Path, env: &[(&str, &Path)]) -> Self {
        let mut command = credgate();
        command.envs(env.iter().copied());
        Self::start(command, config)
    }

    /// [`Process::serve`] allowed one CPU only (`taskset`, util-linux), as
    /// in a one-CPU container or pinned to a core.
    pub fn serve_on_one_cpu(config: &Path) -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        let first: String = allowed.chars().take_while(char::is_ascii_digit).collect();
        let mut command = Command::new("taskset");
        command
            .args(["--cpu-list", &first])
            .arg(env!("CARGO_BIN_EXE_credgate"));
        Self::start(command, config)
    }

    /// Runs `command serve --config CONFIG`, `command` being the binary or
    /// a wrapper that executes it.
    fn start(mut command: Command, config: &Path) -> Self {
        let mut child = command
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(addrs) = listening(&line) {
                    let _ = tx.send(addrs);
                }
                log.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let (proxy, admin, plain) = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("credgate did not start: {}", stderr.lock().unwrap()));
        Self {
            proxy,
            admin,
            plain,
            child,
            stderr,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM, waits for the exit and for stderr to close: the
    /// complete log, with nothing still in flight.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.wait(Duration::from_secs(20));
        (status, self.closed_logs())
    }

    /// Everything the process logged, once stderr has closed (the process
    /// must have exited).
    pub fn closed_logs(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.logs()
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "credgate did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The peak resident memory of the process (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The addresses of a `listening` log line, JSON or text: proxy, admin and
/// the optional cleartext listener.
fn listening(line: &str) -> Option<(SocketAddr, SocketAddr, Option<SocketAddr>)> {
    let field = |key: &str| -> Option<String> {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(event) => event.get(key)?.as_str().map(str::to_owned),
            Err(_) => {
                // Text: `... listening proxy=ADDR admin=ADDR plain=Some(ADDR)`,
                // perhaps with colour codes.
                let plain = regex::Regex::new("\x1b\\[[0-9;]*m")
                    .unwrap()
                    .replace_all(line, "");
                let value = plain
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{key}=")[..]))?;
                Some(value.to_owned())
            }
        }
    };
    let is_listening = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(event) => event["message"] == "listening",
        Err(_) => line.contains(" listening "),
    };
    if !is_listening {
        return None;
    }
    let plain = field("plain")?;
    let plain = plain
        .trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .ok();
    Some((
        field("proxy")?.parse().ok()?,
        field("admin")?.parse().ok()?,
        plain,
    ))
}

/// Runs `credgate ARGS` to completion: exit status, stdout, stderr.
pub fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = credgate()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), out, err)
}
