//! A progress bar for long loads and conversions: shown on a terminal, hidden when
//! stderr is not one or with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use qload_loader::{Control, Event};

/// A bar fed by the loader's progress events.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar when stderr is a terminal and `quiet` is off; otherwise a no-op.
    pub fn new(quiet: bool) -> Bar {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Bar { bar }
    }

    /// The loader callback.
    pub fn on_event(&self, e: &Event<'_>) -> Control {
        if let Some(b) = &self.bar {
            match e {
                Event::Started { bytes, .. } => b.set_length(*bytes),
                Event::TensorStarted { name, .. } => b.set_message(name.to_string()),
                Event::TensorFinished { bytes_done, .. } | Event::Bytes { bytes_done } => b.set_position(*bytes_done),
                _ => {}
            }
        }
        Control::Continue
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
