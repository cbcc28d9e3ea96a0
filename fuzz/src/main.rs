//! One AFL++ harness for every target: `MMNET_FUZZ_TARGET=json_message afl-fuzz ...`.
//!
//! `fuzz_nohook!`: mmnet deliberately catches panics inside some dependencies (a malformed
//! Arrow batch, a corrupt Parquet footer) and turns them into errors; afl.rs's default
//! hook would abort on those first. A panic that escapes a target still aborts: a crash.

fn main() {
    let name = std::env::var("MMNET_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = mmnet_fuzz::targets::by_name(&name) else {
        let names: Vec<_> = mmnet_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("MMNET_FUZZ_TARGET must be one of {names:?}, got {name:?}");
        std::process::exit(2);
    };
    let run = target.run;
    afl::fuzz_nohook!(|data: &[u8]| run(data));
}
