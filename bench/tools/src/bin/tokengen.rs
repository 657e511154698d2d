//! Mints many tokens straight into a tilegate store, for the benchmark only.
//!
//! `tokengen --config F --path ID --tier T --count N --out FILE [--max-zoom Z] [--tile Z/X/Y]... [--unknown]`
//!
//! Writes one raw token per line to FILE. The tokens are made exactly as the CLI makes
//! them (`tilegate::admin::mint`, `Store::create`, through the store interface like
//! every other caller).
//! `--unknown` writes well-formed tokens with valid checksums that are NOT stored (the
//! reject path). Never use this on a real store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tilegate::admin::{self, Minter};
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;
use tilegate::store::{AccessSpec, Store};

fn usage() -> ExitCode {
    eprintln!(
        "usage: tokengen --config F --path ID --tier T --count N --out FILE [--max-zoom Z] [--tile Z/X/Y]... [--unknown]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut config, mut path, mut tier, mut count, mut out) = (None, None, None, None, None);
    let (mut max_zoom, mut tiles, mut unknown) = (None, Vec::new(), false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--path" => path = args.next(),
            "--tier" => tier = args.next(),
            "--count" => count = args.next().and_then(|s| s.parse::<usize>().ok()),
            "--out" => out = args.next().map(PathBuf::from),
            "--max-zoom" => max_zoom = args.next().and_then(|s| s.parse::<u32>().ok()),
            "--tile" => {
                let Some(t) = args.next() else { return usage() };
                let p: Vec<u64> = t.split('/').filter_map(|s| s.parse().ok()).collect();
                if p.len() != 3 {
                    return usage();
                }
                tiles.push((p[0] as u32, p[1], p[2]));
            }
            "--unknown" => unknown = true,
            _ => return usage(),
        }
    }
    let (Some(config), Some(path), Some(tier), Some(count), Some(out)) = (config, path, tier, count, out) else {
        return usage();
    };
    let config = match tilegate::config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tokengen: config: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tier: Tier = match tier.parse() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tokengen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fence = match Fence::new((!tiles.is_empty()).then_some(&tiles[..]), max_zoom) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tokengen: fence: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&out).expect("create --out"));
        let store = if unknown { None } else { Some(Store::open(&config.store.path).expect("open store")) };
        let now = tilegate::store::now_unix();
        for i in 0..count {
            let access = vec![AccessSpec { path_id: path.clone(), tier, fence: fence.clone(), properties: None }];
            let minted = admin::mint(
                &config.tokens.prefix,
                format!("bench token {i}"),
                Scope::All,
                now,
                None,
                access,
                Minter { creator: None, client: "bench".into() },
            )
            .expect("randomness");
            if let Some(store) = &store {
                store.create(minted.row).await.expect("store create");
            }
            writeln!(file, "{}", minted.secret.expose()).expect("write");
        }
        file.flush().expect("flush");
    });
    ExitCode::SUCCESS
}
