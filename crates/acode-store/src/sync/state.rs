//! The engine's own state in `sync_state`: the pull cursor, pause, the HLC
//! floor, and the single-worker lease with its fencing epoch (§15 rule 13).

use crate::Tx;
use crate::error::{Result, StoreError};

/// A lease held by one worker: `epoch` fences every settle and cursor save.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub epoch: i64,
    pub expires_at: i64,
}

impl Tx<'_> {
    /// The pull cursor (`"0"` before the first pull).
    pub fn cursor(&self) -> Result<String> {
        Ok(self.state("cursor")?.unwrap_or_else(|| "0".into()))
    }

    /// Saves the cursor; it only moves forward.
    pub fn advance_cursor(&self, next: &str) -> Result<()> {
        let current = self.cursor()?;
        // acode's cursors end with the feed sequence number (`<seq>` or
        // `<horizon>.<seq>`); any other server's are opaque and replace.
        let seq = |c: &str| c.rsplit('.').next().and_then(|s| s.parse::<i64>().ok());
        let forward = match (seq(&current), seq(next)) {
            (Some(a), Some(b)) => b > a || (b == a && next != current),
            _ => next != current,
        };
        if forward {
            self.set_state("cursor", next)?;
        }
        Ok(())
    }

    /// Starts again from the beginning of the feed (after `cursor_expired`).
    pub fn reset_cursor(&self) -> Result<()> {
        self.set_state("cursor", "0")
    }

    pub fn paused(&self) -> Result<bool> {
        Ok(self.state("paused")?.as_deref() == Some("1"))
    }

    pub fn set_paused(&self, paused: bool) -> Result<()> {
        self.set_state("paused", if paused { "1" } else { "0" })
    }

    /// Moves the HLC floor up to `hlc` (an HLC seen from the remote): every
    /// later local change is stamped after it (rule 12).
    pub fn observe_hlc(&self, hlc: &str) -> Result<()> {
        if self
            .state("hlc_floor")?
            .is_none_or(|floor| hlc > floor.as_str())
        {
            self.set_state("hlc_floor", hlc)?;
        }
        Ok(())
    }

    pub fn lease(&self) -> Result<Option<Lease>> {
        let (Some(owner), Some(epoch), Some(expires)) = (
            self.state("lease_owner")?,
            self.state("lease_epoch")?,
            self.state("lease_expires_at")?,
        ) else {
            return Ok(None);
        };
        let parse = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| StoreError::Internal(format!("lease value {v:?}")))
        };
        Ok(Some(Lease {
            owner,
            epoch: parse(&epoch)?,
            expires_at: parse(&expires)?,
        }))
    }

    /// Takes or renews the lease for `owner` until `now + ttl_ms`. `None`
    /// when another owner holds it and it has not expired. A new holder gets
    /// a new epoch, which fences the old one out.
    /// `holder_gone` says whether another holder is known to be dead (its
    /// process is gone), so a crashed worker's lease need not run out.
    pub fn acquire_lease(
        &self,
        owner: &str,
        now: i64,
        ttl_ms: i64,
        holder_gone: impl Fn(&str) -> bool,
    ) -> Result<Option<Lease>> {
        let current = self.lease()?;
        let epoch = match &current {
            Some(l) if l.owner == owner => l.epoch,
            Some(l) if l.expires_at > now && !holder_gone(&l.owner) => return Ok(None),
            Some(l) => l.epoch + 1,
            None => 1,
        };
        let lease = Lease {
            owner: owner.to_string(),
            epoch,
            expires_at: now + ttl_ms,
        };
        self.set_state("lease_owner", &lease.owner)?;
        self.set_state("lease_epoch", &lease.epoch.to_string())?;
        self.set_state("lease_expires_at", &lease.expires_at.to_string())?;
        Ok(Some(lease))
    }

    /// Gives the lease up (graceful shutdown), if `owner` still holds it.
    pub fn release_lease(&self, owner: &str) -> Result<()> {
        if self.lease()?.is_some_and(|l| l.owner == owner) {
            self.set_state("lease_expires_at", "0")?;
        }
        Ok(())
    }

    /// Fails unless the lease is still at `epoch`: a worker that lost its
    /// lease must not settle or move the cursor.
    pub fn check_epoch(&self, epoch: i64) -> Result<()> {
        match self.lease()? {
            Some(l) if l.epoch == epoch => Ok(()),
            _ => Err(StoreError::Fenced(epoch)),
        }
    }
}
