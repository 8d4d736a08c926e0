//! A real `belfry serve` on a loopback port, in its own directory (zone, keys,
//! configuration, suppression list, audit log), stopped by its PID when dropped.

use super::clients::{run, tcp_pipelined, udp_raw, wire};
use super::oracle;
use belfry::wire::decode::{build_query, decode, Message};
use belfry::wire::Rtype;
use hickory_proto::dnssec::rdata::DNSKEY;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An answer as belfry's decoder and the hickory-proto oracle read it.
pub struct Answer {
    /// belfry's own decoding.
    pub ours: Message,
    /// hickory-proto's decoding (RRSIGs already verified when the zone is signed).
    pub hickory: hickory_proto::op::Message,
    /// Size of the message in bytes.
    pub size: usize,
}

pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The project root (for the sample zone).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The belfry binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_belfry"))
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

/// Numbers scratch directories apart (two tests may make one with the same tag at once).
static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "belfry-it-{tag}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::SeqCst)
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
    /// Whether the zone is signed (then every RRSIG received is verified by the oracle).
    pub signed: bool,
    /// Environment variables given to the server process.
    pub env: Vec<(String, String)>,
    /// `RLIMIT_NOFILE` (soft and hard) for the server process.
    pub nofile: Option<u64>,
    dnskeys: OnceLock<Vec<DNSKEY>>,
}

/// Options for a test server.
#[derive(Clone)]
pub struct Opts {
    pub signed: bool,
    pub extra_dnssec: String,
    pub extra_server: String,
    /// More lines of the `[suppress]` section.
    pub extra_suppress: String,
    /// More lines of the `[zone]` section.
    pub extra_zone: String,
    pub zone: Option<PathBuf>,
    /// Environment variables for the server process (e.g. the signing fault hook).
    pub env: Vec<(String, String)>,
    /// `[server] tcp_idle_timeout`.
    pub idle_timeout: u64,
    /// Text appended to the configuration (whole sections such as `[log]`).
    pub extra_config: String,
    /// `RLIMIT_NOFILE` (soft and hard) for the server process.
    pub nofile: Option<u64>,
    /// Lines of the `[rrl]` section. By default 127.0.0.1 is exempt, so no other test's
    /// burst of queries is ever rate-limited; `tests/traffic.rs` tests RRL itself from
    /// other loopback addresses.
    pub rrl: String,
    /// Files written into the server's directory before it starts: (name, contents).
    pub files: Vec<(String, String)>,
    /// Algorithm of the keys made at start (`belfry keygen --algorithm`).
    pub key_algorithm: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            signed: true,
            extra_dnssec: String::new(),
            extra_server: String::new(),
            extra_suppress: String::new(),
            extra_zone: String::new(),
            zone: None,
            env: Vec::new(),
            idle_timeout: 3,
            extra_config: String::new(),
            nofile: None,
            rrl: "exempt = [\"127.0.0.1\"]".into(),
            files: Vec::new(),
            key_algorithm: None,
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
                let alg = opts.key_algorithm.as_deref().unwrap_or("ecdsap256sha256");
                let st = Command::new(bin())
                    .args([
                        "keygen",
                        "--zone",
                        "be.",
                        "--algorithm",
                        alg,
                        "--role",
                        role,
                    ])
                    .arg("--dir")
                    .arg(d.join("keys"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        }
        std::fs::write(d.join("admin.token"), TOKEN).unwrap();
        for (name, text) in &opts.files {
            std::fs::write(d.join(name), text).unwrap();
        }
        let port = free_port();
        let admin_port = free_port();
        let config = d.join("belfry.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = [\"127.0.0.1:{port}\"]\nworkers = 2\ntcp_idle_timeout = {}\n{}\n[zone]\norigin = \"be.\"\nfile = \"be.zone\"\n{}\n[dnssec]\nenabled = {}\nkey_dir = \"keys\"\n{}\n[suppress]\nfile = \"suppressions.toml\"\naudit_log = \"audit.log\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\nadmin_token_file = \"admin.token\"\n{}\n[state]\ndir = \"state\"\n[rrl]\n{}\n{}\n",
                opts.idle_timeout,
                opts.extra_server,
                opts.extra_zone,
                opts.signed,
                opts.extra_dnssec,
                opts.extra_suppress,
                opts.rrl,
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
            signed: opts.signed,
            env: opts.env.clone(),
            nofile: opts.nofile,
            dnskeys: OnceLock::new(),
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
        // SAFETY: a plain kill(2) of our own child.
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
        self.try_query(name, t, edns, false).map(|a| a.ours)
    }

    /// One query over UDP or TCP; the answer is parsed by belfry's decoder and by the
    /// hickory-proto oracle, and every RRSIG in it is verified by the oracle.
    fn try_query(
        &self,
        name: &str,
        t: Rtype,
        edns: Option<(u16, bool)>,
        tcp: bool,
    ) -> Option<Answer> {
        let q = build_query(
            0x4242,
            &belfry::name::from_text(name, &[0]).unwrap(),
            t,
            edns,
        );
        let raw = if tcp {
            tcp_pipelined(self.addr(), std::slice::from_ref(&q)).pop()?
        } else {
            udp_raw(self.addr(), &q, Duration::from_millis(300))?
        };
        let hickory = oracle::parse(&raw);
        if self.signed && oracle::has_rrsigs(&hickory) {
            oracle::verify_rrsigs(&hickory, self.dnskeys());
        }
        Some(Answer {
            ours: decode(&raw)?,
            hickory,
            size: raw.len(),
        })
    }

    /// One UDP query (EDNS 1232, DO as given) with the Rust client.
    pub fn udp(&self, name: &str, t: Rtype, dnssec_ok: bool) -> Message {
        self.try_udp(name, t, Some((1232, dnssec_ok)))
            .unwrap_or_else(|| panic!("no UDP answer for {name}"))
    }

    /// One query (UDP unless `tcp`; `edns` = (payload size, DO), `None` for no EDNS),
    /// decoded by both belfry and the oracle, RRSIGs verified.
    pub fn ask(&self, name: &str, t: Rtype, edns: Option<(u16, bool)>, tcp: bool) -> Answer {
        self.try_query(name, t, edns, tcp)
            .unwrap_or_else(|| panic!("no answer for {name} {t:?}"))
    }

    /// The DNSKEY RRset the server publishes, read once, checked by the oracle: its own
    /// RRSIG verifies and its key tags are those of the key files.
    pub fn dnskeys(&self) -> &[DNSKEY] {
        self.dnskeys.get_or_init(|| {
            let q = build_query(0x4243, &wire("be."), Rtype::DNSKEY, Some((4096, true)));
            let raw = tcp_pipelined(self.addr(), &[q])
                .pop()
                .expect("DNSKEY answer");
            let keys = oracle::dnskeys_of(&oracle::parse(&raw));
            let mut tags: Vec<u16> = keys.iter().map(oracle::key_tag).collect();
            tags.sort();
            let mut files: Vec<u16> = std::fs::read_dir(self.dir.0.join("keys"))
                .unwrap()
                .filter_map(|e| {
                    let n = e.unwrap().file_name().into_string().unwrap();
                    let base = n.strip_suffix(".key")?;
                    base.rsplit('+').next()?.parse().ok()
                })
                .collect();
            files.sort();
            assert_eq!(tags, files, "served DNSKEYs are the key files' keys");
            keys
        })
    }

    /// The admin API's `GET /v1/status`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.api("GET", "/v1/status", None, Some(TOKEN));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The list file's text once it holds the served version (with a state
    /// directory the server writes it in the background, right after a change).
    pub fn list_file(&self) -> String {
        let path = self.dir.0.join("suppressions.toml");
        let served = self.status()["serial"]
            .as_u64()
            .expect("a serial in the status");
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let at = belfry::suppress::list::parse(&path, &text).map(|l| u64::from(l.serial));
            if at == Ok(served) {
                return text;
            }
            assert!(
                std::time::Instant::now() < end,
                "the list file is not at serial {served} after 10 s: {at:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
