//! The progress bar of long commands.

/// A progress bar for long work (CLI.md): drawn on stderr only when stdout
/// is a terminal, never with `--json`, and only once the work has taken
/// more than a second.
pub struct Progress {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
    visible: std::cell::Cell<bool>,
    allowed: bool,
}

impl Progress {
    pub fn new(json: bool, total: u64, what: &str) -> Progress {
        use std::io::IsTerminal;
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::hidden(),
        )
        .with_message(what.to_owned());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            started: std::time::Instant::now(),
            visible: std::cell::Cell::new(false),
            allowed: !json && std::io::stdout().is_terminal(),
        }
    }

    pub fn inc(&self) {
        self.bar.inc(1);
        if self.allowed
            && !self.visible.get()
            && self.started.elapsed() > std::time::Duration::from_secs(1)
        {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.visible.set(true);
        }
    }

    pub fn finish(&self) {
        if self.visible.get() {
            self.bar.finish_and_clear();
        }
    }
}
