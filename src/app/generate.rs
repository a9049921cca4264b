//! `fedgate completions SHELL` and `fedgate man --out DIR`: shell
//! completions and man pages generated from the command-line definition
//! itself, so they cannot drift from it. The Debian package ships their
//! output (see `packaging/build-deb.sh`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::cli::{Cli, FILES, SIGNALS, SYSTEMD};

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "fedgate", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fedgate completions: cannot write: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes `fedgate.1` and one page per subcommand (`fedgate-run.1`,
/// `fedgate-accounting-extract.1`, ...) into `out`, creating it if needed,
/// and lists the files written.
pub fn man(out: &Path) -> ExitCode {
    let written = std::fs::create_dir_all(out).and_then(|()| {
        clap_mangen::generate_to(Cli::command(), out)?;
        // The main page again, with FILES, SIGNALS and SEE ALSO sections
        // instead of clap_mangen's generic EXTRA for the long help.
        std::fs::write(out.join("fedgate.1"), main_page()?)?;
        let mut pages: Vec<_> = std::fs::read_dir(out)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "1"))
            .collect();
        pages.sort();
        Ok(pages)
    });
    match written {
        Ok(pages) => {
            for p in pages {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "fedgate man: cannot write man pages to {}: {e}",
                out.display()
            );
            ExitCode::from(1)
        }
    }
}

/// `fedgate.1`: clap_mangen's sections, then ours.
fn main_page() -> std::io::Result<Vec<u8>> {
    use clap_mangen::roff::{Roff, bold, roman};
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut roff = Roff::default();
    for (title, rows) in [("FILES", FILES), ("SIGNALS", SIGNALS)] {
        roff.control("SH", [title]);
        for (k, v) in rows {
            roff.control("TP", []);
            roff.text([bold(*k)]);
            roff.text([roman(*v)]);
        }
    }
    roff.control("SH", ["SYSTEMD"]);
    roff.text([roman(SYSTEMD)]);
    roff.control("SH", ["SEE ALSO"]);
    let mut see = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if !see.is_empty() {
            see.push(roman(", "));
        }
        see.push(bold(format!("fedgate-{}", sub.get_name())));
        see.push(roman("(1)"));
    }
    see.push(roman(", "));
    see.push(bold("systemd.service"));
    see.push(roman("(5)"));
    roff.text(see);
    roff.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}
