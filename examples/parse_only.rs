//! Times the master-file parser alone on a file: `cargo run --release --example parse_only -- FILE`.
fn main() {
    let path = std::env::args().nth(1).expect("usage: parse_only FILE");
    let t = std::time::Instant::now();
    let mut n = 0u64;
    let st = belfry::zone::master::parse_file(std::path::Path::new(&path), b"\x02be\x00", |_| {
        n += 1;
        Ok(())
    })
    .expect("parse");
    println!(
        "{} records, {} lines, {:.2} s",
        st.records,
        st.lines,
        t.elapsed().as_secs_f64()
    );
}
