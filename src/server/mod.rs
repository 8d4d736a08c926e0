//! TEMPORARY STAND-IN (replaced by the transport).
use std::net::SocketAddr; use std::sync::Arc; use std::time::Duration;
#[derive(Clone, Copy, Debug, PartialEq, Eq)] pub enum Transport { Udp, Tcp }
pub trait Answerer: Send + Sync + 'static { fn answer(&self, query: &[u8], peer: SocketAddr, transport: Transport, out: &mut Vec<u8>) -> bool; }
pub struct ServerConfig { pub listen: Vec<SocketAddr>, pub workers: usize, pub tcp_max_connections: usize, pub tcp_idle_timeout: Duration, pub tcp_max_queries_per_connection: usize }
pub struct Server;
impl Server { pub fn start<A: Answerer>(_cfg: ServerConfig, _a: Arc<A>) -> std::io::Result<Server> { Err(std::io::Error::other("not yet")) } pub fn shutdown(&self) {} pub fn wait(self) {} }
pub fn wait_for_signal() -> std::io::Result<()> { Ok(()) }
