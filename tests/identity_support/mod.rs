//! Shared by the identity integration tests: running the real binary in a controlled environment on
//! a fixture tree, and a loopback HTTP/1.1 server of the tests' own that plays the ECS agent (and
//! misbehaves on request). Only 127.0.0.1 is ever contacted.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sentinit to run: cargo's binary, or the `SENTINIT_TEST_LAUNCHER` of a run under user-mode
/// emulation (see `sentinit()` in tests/common/mod.rs).
pub fn bin() -> String {
    std::env::var("SENTINIT_TEST_LAUNCHER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sentinit").to_string())
}

/// The slack a time-budget assertion allows above sentinit's own budget, for starting processes: `ms`
/// natively, `ms` times `SENTINIT_TEST_SLACK_FACTOR` where starting a process is slow. Under qemu-aarch64
/// user-mode emulation (tests/qemu_user.rs sets 3) starting sentinit alone takes a few hundred ms; the
/// budget itself is never scaled, so a sentinit that overstays it by seconds still fails.
pub fn slack(ms: u64) -> Duration {
    let factor = std::env::var("SENTINIT_TEST_SLACK_FACTOR").ok().and_then(|f| f.parse::<u64>().ok()).unwrap_or(1);
    Duration::from_millis(ms * factor.max(1))
}

/// `tests/fixtures/identity/<name>`, a fake `/proc`.
pub fn fixture(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/identity", name].iter().collect();
    assert!(path.join("self/cgroup").exists(), "fixture {name} is missing");
    path.to_string_lossy().into_owned()
}

/// One run of sentinit with only PATH and `env` in its environment.
pub struct Run {
    pub output: Output,
    pub elapsed: Duration,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// The `--identity` JSON.
    pub fn json(&self) -> Value {
        assert_eq!(self.output.status.code(), Some(0), "stderr: {}", self.stderr());
        serde_json::from_str(self.stdout().trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout()))
    }
    /// The workload's environment, when it was `env`.
    pub fn workload_env(&self) -> HashMap<String, String> {
        assert_eq!(self.output.status.code(), Some(0), "stderr: {}", self.stderr());
        self.stdout()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// How long a run may take before the test kills it: far above any budget the tests use, so that a
/// sentinit that blocks (on a FIFO, say) fails its test instead of hanging the suite.
const RUN_LIMIT: Duration = Duration::from_secs(20);

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sentinit");
    let pipe_reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = pipe_reader(Box::new(child.stdout.take().unwrap()));
    let stderr = pipe_reader(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for sentinit") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            break child.wait().expect("wait for sentinit");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let output = Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
    Run { output, elapsed }
}

/// `sentinit --identity` on the fixture `proc_root`.
pub fn identity(extra_args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec!["--identity"];
    args.extend_from_slice(extra_args);
    run(&args, env)
}

/// `sentinit [args] -- env`.
pub fn workload(extra_args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = extra_args.to_vec();
    args.extend_from_slice(&["--", "env"]);
    run(&args, env)
}

/// A copy of the fixture `name` in a fresh directory, with `hostname` as its hostname.
pub fn fixture_with_hostname(name: &str, hostname: &str) -> PathBuf {
    let copy = scratch_dir(&format!("fixture-{name}-{hostname}"));
    let source = PathBuf::from(fixture(name));
    for file in ["self/cgroup", "self/cpuset", "self/mountinfo"] {
        std::fs::create_dir_all(copy.join(file).parent().unwrap()).unwrap();
        std::fs::copy(source.join(file), copy.join(file)).unwrap();
    }
    std::fs::create_dir_all(copy.join("sys/kernel")).unwrap();
    std::fs::write(copy.join("sys/kernel/hostname"), format!("{hostname}\n")).unwrap();
    copy
}

/// An empty directory of this test process's own under the temporary directory.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentinit-identity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port where a connection is refused for as long as this value lives: a TCP socket is
/// bound there but never listens, so the kernel answers SYNs with RST, and nothing else (a parallel
/// test's listener included) can take the port meanwhile.
pub struct RefusedPort {
    fd: std::os::fd::OwnedFd,
    pub port: u16,
}

impl RefusedPort {
    pub fn new() -> RefusedPort {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2); the descriptor is owned by the OwnedFd at once.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let mut address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
            sin_zero: [0; 8],
        };
        let mut length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        use std::os::fd::AsRawFd;
        // SAFETY: `address` is a valid sockaddr_in of `length` bytes, for bind and for getsockname.
        unsafe {
            let pointer = &mut address as *mut libc::sockaddr_in as *mut libc::sockaddr;
            assert_eq!(libc::bind(fd.as_raw_fd(), pointer, length), 0, "bind: {}", std::io::Error::last_os_error());
            assert_eq!(libc::getsockname(fd.as_raw_fd(), pointer, &mut length), 0);
        }
        RefusedPort { fd, port: u16::from_be(address.sin_port) }
    }

    pub fn url(&self, path: &str) -> String {
        let _ = &self.fd;
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// What the fake agent does with one request.
#[derive(Clone)]
pub enum Reply {
    /// A complete response with a correct Content-Length.
    Status(u16, String),
    /// Accepts and never answers.
    Hang,
    /// Sends the headers of a response with this body, then one byte every `every`.
    Trickle(String, Duration),
    /// A 200 whose body is `size` bytes of JSON-ish filler, streamed until the client goes away.
    Huge(usize),
    /// Exactly these bytes, then the connection is closed.
    Raw(Vec<u8>),
}

pub fn ok(body: &str) -> Reply {
    Reply::Status(200, body.to_string())
}

type Handler = dyn Fn(&str, usize) -> Reply + Send + Sync;

/// A loopback HTTP/1.1 server: `handler(path_and_query, nth_request_for_that_path)` decides each reply.
/// Every request's path is recorded.
pub struct FakeAgent {
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeAgent {
    pub fn start(handler: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> FakeAgent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        FakeAgent { url, requests }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, handler: &Handler, log: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    let nth = {
        let mut log = log.lock().unwrap();
        log.push(path.clone());
        log.iter().filter(|p| **p == path).count()
    };
    let _ = match handler(&path, nth) {
        Reply::Status(status, body) => stream.write_all(
            format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                reason(status),
                body.len()
            )
            .as_bytes(),
        ),
        Reply::Hang => {
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
        Reply::Trickle(body, every) => {
            let _ = stream.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len())
                    .as_bytes(),
            );
            for b in body.bytes() {
                std::thread::sleep(every);
                if stream.write_all(&[b]).is_err() {
                    break;
                }
            }
            Ok(())
        }
        Reply::Huge(size) => {
            let _ = stream.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n[")
                    .as_bytes(),
            );
            let chunk = "\"0000000000000000000000000000000000000000000000000000000000000000\",".repeat(1000);
            let mut sent = 1;
            while sent < size {
                if stream.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
                sent += chunk.len();
            }
            Ok(())
        }
        Reply::Raw(bytes) => stream.write_all(&bytes),
    };
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}
