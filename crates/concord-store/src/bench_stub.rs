//! A store whose audit appends do nothing: the "audit stubbed" side of issue 17's
//! comparison (partner paging with the audit against the same paging without it, in one
//! run). Compiled only with the feature `bench-stub-audit`, which nothing but benchmarks
//! enables: `audit_bench` (in-process) and a benchmark build of `concord`
//! (`cargo build --release -p concord --features bench-stub-audit`, BENCHMARKS §11), whose
//! `serve` says at start that it records nothing. Never a build to run a node with.

use std::sync::Arc;

use crate::audit::{self, Hash};
use crate::*;

/// Every call goes to the store inside, except [`Store::append_named_transfer`] (and so
/// [`Store::append_transfer`] and [`Store::append_audit`]), which records nothing and succeeds.
#[derive(Debug)]
pub struct NoAudit(pub Arc<dyn Store>);

macro_rules! forward {
    ($($name:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {
        $(fn $name(&self, $($a: $t),*) -> $r { self.0.$name($($a),*) })*
    };
}

impl Store for NoAudit {
    forward! {
        flush() -> Result<()>;
        collections() -> Result<Vec<Collection>>;
        collection(id: &str) -> Result<Option<Collection>>;
        create_collection(new: &NewCollection) -> Result<Collection>;
        delete_object(c: &str, id: &str, f: &ObjectFilter) -> Result<usize>;
        delete_versions(c: &str, id: &str, v: &[i64]) -> Result<usize>;
        count(c: &str) -> Result<u64>;
        last_added(c: &str) -> Result<Option<i64>>;
        collection_version(c: &str) -> Result<i64>;
        put_status(id: &str, body: &str) -> Result<()>;
        status(id: &str) -> Result<Option<String>>;
        setting(k: &str) -> Result<Option<String>>;
        set_setting(k: &str, v: &str) -> Result<()>;
        setting_or_insert(k: &str, v: &str) -> Result<String>;
        try_lease(k: &str, h: &str, n: i64, u: i64) -> Result<bool>;
        settings_with_prefix(p: &str) -> Result<Vec<(String, String)>>;
        received_from(id: &str, v: Option<&str>) -> Result<Vec<String>>;
        creators(id: &str) -> Result<Vec<String>>;
        ever_held(id: &str) -> Result<bool>;
        partners() -> Result<Vec<Partner>>;
        admit_partner(p: &Partner, s: &[(String, String)]) -> Result<crate::Admission>;
        put_invitation(i: &crate::InvitationRecord) -> Result<()>;
        invitation(id: &str) -> Result<Option<crate::InvitationRecord>>;
        invitations() -> Result<Vec<crate::InvitationRecord>>;
        consume_invitation(
            id: &str, u: &crate::InvitationUse, p: &Partner, s: &[(String, String)]
        ) -> Result<crate::Admission>;
        users() -> Result<Vec<crate::User>>;
        user(n: &str) -> Result<Option<crate::User>>;
        user_by_token_id(t: &str) -> Result<Option<crate::User>>;
        add_user(u: &crate::User) -> Result<bool>;
        reset_user(n: &str, t: &str, p: &str, h: &str, k: Option<&str>) -> Result<bool>;
        remove_user(n: &str) -> Result<bool>;
        use_totp_step(n: &str, s: i64) -> Result<bool>;
        start_session(w: &crate::WebSession, c: &crate::SessionClock) -> Result<()>;
        start_session_audited(
            w: &crate::WebSession, c: &crate::SessionClock, a: &[AuditRecord]
        ) -> Result<()>;
        begin_oidc_login(
            l: &crate::OidcLogin, n: i64, q: crate::OidcQuota
        ) -> Result<crate::OidcBegin>;
        take_oidc_login(s: &str, n: i64) -> Result<Option<crate::OidcLogin>>;
        touch_session(i: &str, c: &crate::SessionClock) -> Result<Option<crate::WebSession>>;
        end_session(i: &str) -> Result<()>;
        end_sessions_of(s: &crate::SessionSubject) -> Result<usize>;
        package_chain(d: PackageDirection, n: &str, p: &str) -> Result<Option<PackageLink>>;
        package_cursor(p: &str, c: &str) -> Result<Option<Cursor>>;
        advance_package_out(p: &str, c: &str, v: i64, l: &PackageLink, u: Option<&Cursor>) -> Result<bool>;
        reserve_package_out(p: &str) -> Result<(i64, Option<PackageLink>)>;
        package_imports(n: &str, p: &str, s: i64, d: &str) -> Result<Vec<PackageLink>>;
        add_approval(a: &crate::Approval) -> Result<()>;
        approvals(s: Option<&str>, l: usize) -> Result<Vec<crate::Approval>>;
        approval(i: &str) -> Result<Option<crate::Approval>>;
        decide_approval(
            i: &str, d: &crate::ApprovalDecision, s: &[crate::SettingChange],
            p: &[crate::PartnerSwap], a: &[AuditRecord]
        ) -> Result<bool>;
        put_partner(p: &Partner) -> Result<()>;
        remove_partner(n: &str) -> Result<bool>;
        remove_partner_with(n: &str, s: &[crate::SettingChange]) -> Result<bool>;
        update_partner(w: &Partner, n: &Partner, a: &[AuditRecord]) -> Result<bool>;
        last_activity(p: &str) -> Result<Option<i64>>;
        audit_entries(q: &AuditQuery) -> Result<Vec<TransferEntry>>;
        audit_window(w: &AuditWindow) -> Result<Vec<TransferEntry>>;
        audit_unindexed(e: &[TransferEntry]) -> Result<Option<(i64, i64)>>;
        audit_checkpoints_covering(f: i64, l: i64) -> Result<Vec<Checkpoint>>;
        audit_names(v: &[i64]) -> Result<Vec<VersionName>>;
        audit_versions_of(id: &str) -> Result<Vec<VersionName>>;
        audit_head() -> Result<(i64, Hash)>;
        audit(a: i64, l: usize, p: Option<&str>) -> Result<Vec<AuditEntry>>;
        audit_checkpoints(a: i64, l: usize) -> Result<Vec<Checkpoint>>;
        last_audit_checkpoint() -> Result<Option<Checkpoint>>;
        audit_boundary() -> Result<Option<ArchiveBoundary>>;
        archive_audit(b: &ArchiveBoundary) -> Result<()>;
    }
    fn begin_write(&self, c: &str) -> Result<Box<dyn WriteBatch + '_>> {
        self.0.begin_write(c)
    }
    fn begin_write_creating(&self, c: &Collection) -> Result<Box<dyn WriteBatch + '_>> {
        self.0.begin_write_creating(c)
    }
    fn entries(&self, c: &str, f: &ObjectFilter, p: &PageRequest, b: bool) -> Result<Page> {
        self.0.entries(c, f, p, b)
    }
    fn add_audit_checkpoint(&self, s: &mut audit::SignHead<'_>) -> Result<Checkpoint> {
        self.0.add_audit_checkpoint(s)
    }
    fn append_named_transfer(
        &self,
        _: &[AuditRecord],
        _: &audit::RowNames,
        _: Option<Hash>,
    ) -> Result<()> {
        Ok(())
    }
}
