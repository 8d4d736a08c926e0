//! A validating unbound on loopback that uses the test server as its stub for `be.`.

use super::clients::{run, status};
use super::server::{free_port, Server, TempDir};
use std::process::{Command, Stdio};
use std::time::Duration;

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
