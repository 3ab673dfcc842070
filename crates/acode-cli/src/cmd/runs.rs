//! `acode runs …`: agent run sessions, with their tasks → steps → tool
//! calls, and artifacts.

use std::fmt;

use acode_store::{Artifact, Entity, Session, Step, StoreError, Task, ToolCall, Tx};
use serde::Serialize;

use super::{Ctx, list_all, parse_id, sync_status};
use crate::cli::RunsCommand;
use crate::output;

/// A session with everything under it.
#[derive(Serialize)]
struct Run {
    #[serde(flatten)]
    session: Session,
    sync_status: &'static str,
    tasks: Vec<TaskTree>,
    artifacts: Vec<Artifact>,
}

#[derive(Serialize)]
struct TaskTree {
    #[serde(flatten)]
    task: Task,
    steps: Vec<StepTree>,
}

#[derive(Serialize)]
struct StepTree {
    #[serde(flatten)]
    step: Step,
    tool_calls: Vec<ToolCall>,
}

impl Run {
    fn load(tx: &Tx<'_>, session: Session) -> Result<Run, StoreError> {
        let mut tasks = Vec::new();
        for task in list_all::<Task>(tx, Some(session.id))? {
            let mut steps = Vec::new();
            for step in list_all::<Step>(tx, Some(task.id))? {
                let tool_calls = list_all::<ToolCall>(tx, Some(step.id))?;
                steps.push(StepTree { step, tool_calls });
            }
            tasks.push(TaskTree { task, steps });
        }
        Ok(Run {
            sync_status: sync_status(tx, Entity::Session, session.id, session.privacy)?,
            artifacts: list_all::<Artifact>(tx, Some(session.id))?,
            session,
            tasks,
        })
    }

    fn counts(&self) -> Counts {
        let steps = self.tasks.iter().flat_map(|t| &t.steps);
        Counts {
            tasks: self.tasks.len(),
            steps: steps.clone().count(),
            tool_calls: steps.map(|s| s.tool_calls.len()).sum(),
            artifacts: self.artifacts.len(),
        }
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.session;
        writeln!(f, "session {} {:?}", s.id, s.title)?;
        writeln!(
            f,
            "  {} · {} · {} · started {}",
            s.status,
            s.privacy,
            self.sync_status,
            s.started_at.to_rfc3339()
        )?;
        for t in &self.tasks {
            writeln!(
                f,
                "  task {} {:?} [{}]",
                t.task.id, t.task.title, t.task.status
            )?;
            for step in &t.steps {
                let st = &step.step;
                writeln!(f, "    step {} {} [{}]", st.id, st.kind, st.status)?;
                for c in &step.tool_calls {
                    writeln!(
                        f,
                        "      tool call {} {} {} [{}]",
                        c.id,
                        c.tool,
                        output::preview(&c.arguments, 40),
                        c.status
                    )?;
                }
            }
        }
        for a in &self.artifacts {
            write!(
                f,
                "  artifact {} {} ({}, {} bytes)",
                a.id,
                a.name,
                a.media_type,
                a.body.len()
            )?;
            match a.step_id {
                Some(step) => writeln!(f, " from step {step}")?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Counts {
    tasks: usize,
    steps: usize,
    tool_calls: usize,
    artifacts: usize,
}

#[derive(Serialize)]
struct RunRow {
    #[serde(flatten)]
    session: Session,
    sync_status: &'static str,
    counts: Counts,
}

#[derive(Serialize)]
struct RunList {
    runs: Vec<RunRow>,
}

impl fmt::Display for RunList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.runs.is_empty() {
            return write!(f, "No runs yet.");
        }
        let mut table = output::table([
            "Id",
            "Title",
            "Status",
            "Privacy",
            "Started",
            "Tasks",
            "Steps",
            "Tools",
            "Artifacts",
        ]);
        for r in &self.runs {
            let (s, c) = (&r.session, &r.counts);
            table.add_row([
                s.id.to_string(),
                output::preview(&s.title, 40),
                s.status.to_string(),
                s.privacy.to_string(),
                s.started_at.format("%Y-%m-%d %H:%M").to_string(),
                c.tasks.to_string(),
                c.steps.to_string(),
                c.tool_calls.to_string(),
                c.artifacts.to_string(),
            ]);
        }
        f.write_str(&output::render(&table))
    }
}

pub fn run(ctx: &Ctx, cmd: RunsCommand) -> anyhow::Result<()> {
    let (_, _, mut store) = ctx.open()?;
    match cmd {
        RunsCommand::List => ctx.print(&store.read(|tx| {
            let mut runs = Vec::new();
            for session in list_all::<Session>(tx, None)? {
                let run = Run::load(tx, session)?;
                runs.push(RunRow {
                    counts: run.counts(),
                    sync_status: run.sync_status,
                    session: run.session,
                });
            }
            Ok(RunList { runs })
        })?),
        RunsCommand::Show { id } => {
            let id = parse_id(&id)?;
            ctx.print(&store.read(|tx| Run::load(tx, tx.get(id)?))?)
        }
    }
}
