//! `rttp-token`: mints a token for a farm in token mode (`--auth-key-file`):
//! a JWT (HS256) whose `sub` is the nick, valid for `--ttl` seconds, limited
//! to `--room`s if any are given. Prints it on stdout.

use std::process::ExitCode;

use clap::Parser;
use rttp_proto::{Nick, Room};
use rttp_server::token::{unix_now, TokenKey};

/// Mints a token for a farm in token mode.
#[derive(Debug, Parser)]
#[command(name = "rttp-token", version)]
struct Args {
    /// The farm's key file (the servers' --auth-key-file).
    #[arg(long, env = "RTTP_AUTH_KEY_FILE", value_name = "PATH")]
    key_file: std::path::PathBuf,
    /// The nick the token is for (its `sub`).
    #[arg(long)]
    nick: String,
    /// Seconds the token is valid for.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// A room the holder may join; repeatable. None: any room.
    #[arg(long = "room", value_name = "ROOM")]
    rooms: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let fail = |why: String| {
        eprintln!("rttp-token: {why}");
        ExitCode::from(2)
    };
    let text = match std::fs::read_to_string(&args.key_file) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", args.key_file.display())),
    };
    let key = match TokenKey::new(&text) {
        Ok(k) => k,
        Err(e) => return fail(e.to_string()),
    };
    let nick = match Nick::new(&args.nick) {
        Ok(n) => n,
        Err(e) => return fail(e.to_string()),
    };
    let mut rooms = Vec::new();
    for r in &args.rooms {
        match Room::new(r) {
            Ok(r) => rooms.push(r),
            Err(e) => return fail(e.to_string()),
        }
    }
    let rooms = (!rooms.is_empty()).then_some(rooms.as_slice());
    match key.mint(nick, unix_now(), args.ttl, rooms) {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}
