//! Shared harness for the end-to-end tests: start the real binary, find its address
//! from the startup line, signal it, count its descriptors, read its shutdown summary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringmaster")
}

/// A running `ringmaster` server, killed on drop if still alive.
pub struct ServerProc {
    child: Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ServerProc {
    /// Starts `ringmaster <args>` and waits (at most 30 s) for its `listening on` line.
    pub fn start(args: &[&str]) -> ServerProc {
        let child = Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringmaster");
        Self::adopt(child)
    }

    /// Starts `ringmaster <args>` from `sh -c "<setup> exec ringmaster <args>"`, for a
    /// test that needs the shell to set something first (a limit, a signal disposition).
    pub fn start_in_shell(setup: &str, args: &[&str]) -> ServerProc {
        let script = format!("{setup} exec {} {}", bin(), args.join(" "));
        let child = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        Self::adopt(child)
    }

    /// Takes over a spawned server (stderr piped) and waits for its `listening on` line.
    pub fn adopt(mut child: Child) -> ServerProc {
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let addr = line
                    .split("listening on ")
                    .nth(1)
                    .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string());
                // Recorded before the address is announced, so a test that reads its
                // stderr after start() sees the startup line.
                sink.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address in the startup line"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not print its listening line; stderr: {:?}",
                    lines.lock().unwrap()
                );
            }
        };
        ServerProc { child, addr, lines }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Waits (bounded) until the descriptor count is at most `target`; returns the last count.
    pub fn wait_fds_at_most(&self, target: usize, within: Duration) -> usize {
        let start = Instant::now();
        loop {
            let n = self.fd_count();
            if n <= target || start.elapsed() > within {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal by name (TERM, INT, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits at most `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(st)) = self.child.try_wait() {
                // Let the stderr reader catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(20))
            .expect("server exits after SIGTERM")
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Sum over the shutdown summary lines of counter `name` (call after exit).
    pub fn counter(&self, name: &str) -> u64 {
        let key = format!("{name}=");
        self.stderr()
            .iter()
            .filter(|l| l.contains(": shard "))
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter_map(|w| w.strip_prefix(&key).and_then(|v| v.parse::<u64>().ok()))
            .sum()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the binary to completion with `args` (bounded) and returns (exit code, stderr).
pub fn run_to_end(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("ringmaster {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `tests/py/bad_backend.py --mode MODE EXTRA..` (a misbehaving HTTP/1.1 backend)
/// and waits for its `listening on` line.
pub fn bad_backend(mode: &str, extra: &[&str]) -> ServerProc {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/bad_backend.py");
    let child = Command::new("python3")
        .arg(script)
        .args(["--mode", mode])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 bad_backend.py");
    ServerProc::adopt(child)
}

/// The certificate file a `--tls-self-signed` server named on its startup line.
pub fn self_signed_cert(server: &ServerProc) -> String {
    let lines = server.stderr();
    lines
        .iter()
        .find_map(|l| l.split("self-signed certificate in ").nth(1))
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no certificate path in {lines:?}"))
        .to_string()
}

/// Runs a client command with a time limit (stdin empty, output captured); panics if it
/// does not finish.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    run_bounded_input(cmd, None, limit)
}

/// [`run_bounded`] with `stdin` (when given) written to the command's standard input.
/// Input and output go through other threads, so a full pipe never stalls the client.
pub fn run_bounded_input(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    limit: Duration,
) -> std::process::Output {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = pipe.write_all(&bytes);
        });
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("client output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("client did not finish within {limit:?}: {cmd:?}");
        }
    }
}

/// Python's `http.server` serving a file from a temporary directory; its address.
pub fn http_server(dir: &std::path::Path) -> (Child, SocketAddr) {
    use std::io::Read as _;
    let mut child = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "0",
            "--directory",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python3 -m http.server");
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") && line.len() < 512 {
        if out.read(&mut b).unwrap_or(0) == 0 {
            break;
        }
        line.push(b[0]);
    }
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    let text = String::from_utf8_lossy(&line);
    let port: u16 = text
        .split(" port ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("http.server said {text:?}"));
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A rustls client configuration trusting the certificates of `ca` (a PEM file), with
/// `alpn` offered: the TLS side of the end-to-end HTTP/2 clients.
pub fn tls_client_config(ca: &std::path::Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA PEM")).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}
