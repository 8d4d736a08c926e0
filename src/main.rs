//! The `belfry` command: see `belfry --help` and the README.

fn main() {
    std::process::exit(belfry::cli::main());
}
