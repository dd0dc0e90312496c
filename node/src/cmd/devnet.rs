//! `cairn devnet …`: the devnet crate's operations behind the command line.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cairn_devnet::control::{self, Control};
use cairn_devnet::layout::Layout;
use cairn_devnet::load::{self, LoadOptions};
use cairn_devnet::up::{self, UpOptions};

use crate::cli::DevnetCommand;

pub fn run(command: DevnetCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    let send = |dir: &std::path::Path, c: Control| -> anyhow::Result<ExitCode> {
        let reply = control::send(&Layout::new(dir), &c)?;
        print!("{reply}");
        Ok(ExitCode::SUCCESS)
    };
    match command {
        DevnetCommand::Up { validators, dir } => {
            let cairn = std::env::current_exe().context("cannot find the cairn binary itself")?;
            up::up(
                &UpOptions {
                    dir: dir.dir,
                    validators,
                    cairn,
                    start_timeout: Duration::from_secs(120),
                },
                &mut out,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        DevnetCommand::Status(dir) => send(&dir.dir, Control::Status),
        DevnetCommand::Kill { node, dir } => send(&dir.dir, Control::Kill(node)),
        DevnetCommand::Restart { node, dir } => send(&dir.dir, Control::Restart(node)),
        DevnetCommand::Pause { node, dir } => send(&dir.dir, Control::Pause(node)),
        DevnetCommand::Resume { node, dir } => send(&dir.dir, Control::Resume(node)),
        DevnetCommand::Partition { groups, dir } => send(
            &dir.dir,
            Control::Partition(control::parse_groups(&groups)?),
        ),
        DevnetCommand::Heal(dir) => send(&dir.dir, Control::Heal),
        DevnetCommand::Down(dir) => send(&dir.dir, Control::Down),
        DevnetCommand::Load {
            rate,
            duration,
            batch,
            threads,
            per_request,
            dir,
        } => {
            anyhow::ensure!(rate > 0, "--rate must be at least 1");
            anyhow::ensure!(
                (1..=cairn_anchoring::MAX_COMMITMENTS_PER_TX).contains(&batch),
                "--batch must be 1 to {}",
                cairn_anchoring::MAX_COMMITMENTS_PER_TX
            );
            let report = load::run(
                &Layout::new(&dir.dir),
                &LoadOptions {
                    rate,
                    duration: Duration::from_secs(duration),
                    batch,
                    threads,
                    per_request,
                },
                &mut out,
            )?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
