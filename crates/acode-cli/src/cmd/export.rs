//! `acode export conversations|messages|runs`: a streamed export of the
//! workspace's data to stdout or to a file (written under a temporary name
//! and renamed when complete), with a progress bar on a terminal.

use std::fmt;
use std::path::{Path, PathBuf};

use acode_backup::files::AtomicFile;
use acode_backup::{BackupError, ExportFilter, ExportFormat, ExportKind};
use serde::Serialize;

use super::{Ctx, parse_id};
use crate::cli::{ExportArgs, ExportFormatArg, ExportWhat};
use crate::progress::Progress;

#[derive(Serialize)]
struct Exported {
    rows: u64,
    path: PathBuf,
}

impl fmt::Display for Exported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Exported {} rows to {}", self.rows, self.path.display())
    }
}

pub fn run(ctx: &Ctx, args: ExportArgs) -> anyhow::Result<()> {
    // Arguments first: a bad one fails before anything is opened or written.
    let filter = ExportFilter {
        chat: args.chat.as_deref().map(parse_id).transpose()?,
        since: args
            .since
            .as_deref()
            .map(acode_backup::export::parse_since)
            .transpose()?,
        include_local_only: args.include_local_only,
    };
    let kind = match args.what {
        ExportWhat::Conversations => ExportKind::Conversations,
        ExportWhat::Messages => ExportKind::Messages,
        ExportWhat::Runs => ExportKind::Runs,
    };
    let format = match args.format {
        ExportFormatArg::Json => ExportFormat::Json,
        ExportFormatArg::Csv => ExportFormat::Csv,
        ExportFormatArg::Sql => ExportFormat::Sql,
    };
    let (_, _, store) = ctx.open()?;
    let total = acode_backup::export::count(&store, kind, &filter)?;
    let progress = Progress::new(ctx.json, total, "Exporting");
    let mut on_row = || progress.inc();

    match args.out {
        Some(path) => {
            let mut file = AtomicFile::create(&path).map_err(|e| output_error(&path, e))?;
            let done = acode_backup::export::export_with(
                &store,
                kind,
                format,
                &filter,
                &mut file,
                &mut on_row,
            )?;
            file.commit().map_err(|e| output_error(&path, e))?;
            progress.finish();
            ctx.print(&Exported {
                rows: done.rows,
                path,
            })
        }
        None => {
            let mut out = std::io::stdout().lock();
            let result = acode_backup::export::export_with(
                &store,
                kind,
                format,
                &filter,
                &mut out,
                &mut on_row,
            );
            progress.finish();
            match result {
                // `acode export … | head`: the reader has all it wanted.
                Err(BackupError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other.map(|_| ()).map_err(Into::into),
            }
        }
    }
}

/// A file error of the export named by the user's path (not the hidden
/// temporary one) and reported as the export's output error, not as a
/// failed backup.
fn output_error(path: &Path, e: BackupError) -> BackupError {
    match e {
        BackupError::Io { source, .. } => BackupError::Output(std::io::Error::new(
            source.kind(),
            format!("{}: {source}", path.display()),
        )),
        other => other,
    }
}
