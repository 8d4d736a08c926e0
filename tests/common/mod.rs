//! Shared helpers for the integration tests: a real `belfry serve` on loopback,
//! real clients (dig, kdig, delv, unbound) and a small Rust client.
#![allow(dead_code)]

use belfry::wire::decode::{build_query, decode, Message};
use belfry::wire::Rtype;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The project root (for the sample zone).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The belfry binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_belfry"))
}

/// Fail (never skip) when a client tool is missing.
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "{tool} is needed by this test; .ci/run installs it (apt-get install bind9-dnsutils knot-dnsutils unbound bind9-utils)");
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    if NEXT_PORT.load(Ordering::SeqCst) == 0 {
        let base = 20000 + (std::process::id() % 2000) as u16 * 10;
        let _ = NEXT_PORT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    }
    loop {
        let p = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let udp = UdpSocket::bind(("127.0.0.1", p));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", p));
        if udp.is_ok() && tcp.is_ok() {
            return p;
        }
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "belfry-it-{tag}-{}-{}",
            std::process::id(),
            NEXT_PORT.fetch_add(0, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server with its own directory (zone, keys, config, list, audit log).
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub dir: TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
    pub nofile: Option<u64>,
}

/// Options for a test server.
#[derive(Clone)]
pub struct Opts {
    pub signed: bool,
    pub extra_dnssec: String,
    pub extra_server: String,
    /// More lines of the `[suppress]` section.
    pub extra_suppress: String,
    pub zone: Option<PathBuf>,
    /// `[server] tcp_idle_timeout`.
    pub idle_timeout: u64,
    /// Text appended to the configuration (whole sections such as `[log]`).
    pub extra_config: String,
    /// Environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// `RLIMIT_NOFILE` (soft and hard) for the server process.
    pub nofile: Option<u64>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            signed: true,
            extra_dnssec: String::new(),
            extra_server: String::new(),
            extra_suppress: String::new(),
            zone: None,
            idle_timeout: 3,
            extra_config: String::new(),
            env: Vec::new(),
            nofile: None,
        }
    }
}

impl Server {
    /// Start on the sample zone with fresh keys.
    pub fn start(tag: &str, opts: Opts) -> Server {
        let dir = TempDir::new(tag);
        let d = &dir.0;
        let zone_src = opts
            .zone
            .clone()
            .unwrap_or_else(|| root().join("zones/be.zone"));
        std::fs::copy(&zone_src, d.join("be.zone")).unwrap();
        if opts.signed {
            for role in ["ksk", "zsk"] {
                let st = Command::new(bin())
                    .args(["keygen", "--zone", "be.", "--role", role, "--dir"])
                    .arg(d.join("keys"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        }
        std::fs::write(d.join("admin.token"), TOKEN).unwrap();
        let port = free_port();
        let admin_port = free_port();
        let config = d.join("belfry.toml");
        std::fs::write(
            &config,
            format!(
                "[server]
listen = [\"127.0.0.1:{port}\"]
workers = 2
tcp_idle_timeout = {}
{}
[zone]
origin = \"be.\"
file = \"be.zone\"
[dnssec]
enabled = {}
key_dir = \"keys\"
{}
[suppress]
file = \"suppressions.toml\"
audit_log = \"audit.log\"
admin_listen = \"127.0.0.1:{admin_port}\"
admin_token_file = \"admin.token\"
{}
[state]
dir = \"state\"
{}
",
                opts.idle_timeout,
                opts.extra_server,
                opts.signed,
                opts.extra_dnssec,
                opts.extra_suppress,
                opts.extra_config
            ),
        )
        .unwrap();
        let mut s = Server {
            child: None,
            port,
            admin_port,
            log: d.join("server.log"),
            config,
            dir,
            env: opts.env.clone(),
            nofile: opts.nofile,
        };
        s.spawn();
        s
    }

    /// Start (again) the process for this server's directory and wait until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, which is async-signal-safe, runs in the child.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Some(m) = self.try_udp("be.", Rtype::SOA, None) {
                if m.rcode == 0 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not answer; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Send SIGKILL and wait.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server running").id() as i32
    }

    /// Send a signal to the server process.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Send SIGTERM and wait; returns whether it exited by itself in time.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(8) {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    fn try_udp(&self, name: &str, t: Rtype, edns: Option<(u16, bool)>) -> Option<Message> {
        let q = build_query(
            0x4242,
            &belfry::name::from_text(name, &[0]).unwrap(),
            t,
            edns,
        );
        let raw = udp_raw(self.addr(), &q, Duration::from_millis(300))?;
        decode(&raw)
    }

    /// One UDP query (EDNS 1232, DO as given) with the Rust client.
    pub fn udp(&self, name: &str, t: Rtype, dnssec_ok: bool) -> Message {
        self.try_udp(name, t, Some((1232, dnssec_ok)))
            .unwrap_or_else(|| panic!("no UDP answer for {name}"))
    }

    /// Run dig against this server.
    pub fn dig(&self, args: &str) -> String {
        run(
            "dig",
            &format!("@127.0.0.1 -p {} +norec +time=2 +tries=1 {args}", self.port),
        )
    }

    /// Run kdig against this server.
    pub fn kdig(&self, args: &str) -> String {
        run(
            "kdig",
            &format!("@127.0.0.1 -p {} +norec +time=2 +retry=0 {args}", self.port),
        )
    }

    /// The trust anchor file for delv (the KSK as a static key).
    pub fn anchor_file(&self) -> PathBuf {
        let mut keys = String::new();
        for e in std::fs::read_dir(self.dir.0.join("keys")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) == Some("key") {
                let text = std::fs::read_to_string(&p).unwrap();
                for l in text.lines().filter(|l| !l.starts_with(';')) {
                    let t: Vec<&str> = l.split_whitespace().collect();
                    if t.len() >= 7 && t[2] == "DNSKEY" && t[3] == "257" {
                        keys.push_str(&format!(
                            "  be. static-key 257 3 {} \"{}\";\n",
                            t[5],
                            t[6..].join("")
                        ));
                    }
                }
            }
        }
        let f = self.dir.0.join("anchor.conf");
        std::fs::write(&f, format!("trust-anchors {{\n{keys}}};\n")).unwrap();
        f
    }

    /// Run delv with our KSK as trust anchor.
    pub fn delv(&self, args: &str) -> String {
        let a = self.anchor_file();
        run(
            "delv",
            &format!(
                "@127.0.0.1 -p {} -a {} +root=be. {args}",
                self.port,
                a.display()
            ),
        )
    }

    /// Call the admin API; returns (status, body).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.unwrap_or("");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
        let b = resp
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        (status, b)
    }

    /// Run `belfry suppress ...` with this server's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .arg("suppress")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Run a client tool and return its stdout (stderr appended).
pub fn run(tool: &str, args: &str) -> String {
    require(tool);
    let out = Command::new(tool)
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// Send one datagram and wait for one answer.
pub fn udp_raw(addr: SocketAddr, q: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.send_to(q, addr).ok()?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Send several queries on one TCP connection in one write, read all answers.
pub fn tcp_pipelined(addr: SocketAddr, queries: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut all = Vec::new();
    for q in queries {
        all.extend_from_slice(&(q.len() as u16).to_be_bytes());
        all.extend_from_slice(q);
    }
    s.write_all(&all).unwrap();
    let mut out = Vec::new();
    for _ in queries {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut m).unwrap();
        out.push(m);
    }
    out
}

/// Wire name from text.
pub fn wire(name: &str) -> Vec<u8> {
    belfry::name::from_text(name, &[0]).unwrap()
}

/// The status word dig prints.
pub fn status(dig_out: &str) -> String {
    dig_out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The flags dig prints.
pub fn flags(dig_out: &str) -> Vec<String> {
    dig_out
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .map(|f| {
            f.split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Records of a section in dig output: (owner, type, rest).
pub fn section(dig_out: &str, name: &str) -> Vec<(String, String, String)> {
    let header = format!(";; {name} SECTION:");
    let mut inside = false;
    let mut v = Vec::new();
    for l in dig_out.lines() {
        if l.starts_with(&header) {
            inside = true;
            continue;
        }
        if inside {
            if l.trim().is_empty() || l.starts_with(";;") {
                break;
            }
            let t: Vec<&str> = l.split_whitespace().collect();
            if t.len() >= 4 {
                v.push((t[0].to_string(), t[3].to_string(), t[4..].join(" ")));
            }
        }
    }
    v
}

/// Whether a path exists and is a file.
pub fn exists(p: &Path) -> bool {
    p.is_file()
}

/// A validating unbound on loopback with belfry as the stub for be.
pub struct Unbound {
    child: std::process::Child,
    port: u16,
    dir: TempDir,
}

impl Unbound {
    pub fn start(s: &Server) -> Unbound {
        let dir = TempDir::new("unbound");
        let port = free_port();
        let mut anchor = String::new();
        for e in std::fs::read_dir(s.dir.0.join("keys")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) == Some("key") {
                for l in std::fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with(';'))
                {
                    if l.split_whitespace().nth(3) == Some("257") {
                        anchor.push_str(l);
                        anchor.push('\n');
                    }
                }
            }
        }
        std::fs::write(dir.0.join("anchor.key"), anchor).unwrap();
        let conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  verbosity: 1\n  val-log-level: 2\n  trust-anchor-file: \"{d}/anchor.key\"\n  module-config: \"validator iterator\"\n  qname-minimisation: no\n  num-threads: 1\nremote-control:\n  control-enable: no\nstub-zone:\n  name: \"be.\"\n  stub-addr: 127.0.0.1@{sp}\n",
            d = dir.0.display(),
            sp = s.port
        );
        std::fs::write(dir.0.join("unbound.conf"), conf).unwrap();
        let child = Command::new("unbound")
            .args(["-d", "-c"])
            .arg(dir.0.join("unbound.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let u = Unbound { child, port, dir };
        for _ in 0..100 {
            if status(&u.dig("be SOA")) == "NOERROR" {
                return u;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("unbound did not start: {}", u.log());
    }

    pub fn dig(&self, q: &str) -> String {
        run(
            "dig",
            &format!("@127.0.0.1 -p {} +time=3 +tries=1 {q}", self.port),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("unbound.log")).unwrap_or_default()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
