//! `acode init`: make a directory a workspace (idempotent).

use std::fmt;
use std::path::PathBuf;

use acode_store::Workspace;
use acode_store::workspace::DEVICE_NAME_KEY;
use serde::Serialize;

use super::Ctx;
use crate::cli::InitArgs;

#[derive(Serialize)]
pub struct Initialized {
    pub workspace: PathBuf,
    pub device_id: String,
    pub device_name: Option<String>,
    pub config: PathBuf,
    pub database: PathBuf,
}

impl fmt::Display for Initialized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Workspace ready at {}", self.workspace.display())?;
        writeln!(f, "  config    {}", self.config.display())?;
        writeln!(f, "  database  {}", self.database.display())?;
        write!(f, "  device    {}", self.device_id)?;
        if let Some(name) = &self.device_name {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}

pub fn run(ctx: &Ctx, args: InitArgs) -> anyhow::Result<()> {
    let (ws, mut store) = Workspace::init(&ctx.init_dir()?, args.device_name.as_deref())?;
    let device_name = store.read(|tx| tx.state(DEVICE_NAME_KEY))?;
    ctx.print(&Initialized {
        workspace: ws.root().to_path_buf(),
        device_id: store.device_id().to_owned(),
        device_name,
        config: ws.config_path(),
        database: ws.db_path(),
    })
}
