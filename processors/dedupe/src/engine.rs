//! The synchronous core: staging a batch of observations against the state, planning what to
//! emit, and committing.
//!
//! A batch never changes the engine until [`Engine::commit`]: every key it touches is *moved*
//! from the cache (or read from the database) into the batch's staging area and changed there.
//! If downstream refuses the batch's output, the caller drops the batch and the keys it had
//! taken are simply re-read from the database next time, which still holds the last committed
//! state. So a refused delivery leaves no trace, and its retry is not mistaken for a duplicate.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentcol_component::agent::merge::digest;
use agentcol_component::agent::{
    attr, trace_alias, Added, AgentRecord, EventKey, Merged, Precedence, RecordError, Source,
};
use agentcol_component::opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use agentcol_component::{AttachedHead, KeyStates, KeyedRecord, Logs};
use prost::Message;

use crate::cache::Lru;
use crate::codec;
use crate::store::{
    AliasId, DecisionKind, DecisionRow, KeyState, Loc, StateError, Store, Tomb, Upsert, Write,
};

/// Maps keyed by ids that come from outside: foldhash is fast on short keys and seeded per
/// process, so colliding ids cannot be precomputed.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The scope of records emitted outside their input position when their origin is unknown.
pub const SCOPE_NAME: &str = "agentcol.dedupe";

/// How many origin templates are kept in memory.
const ORIGIN_CACHE: usize = 1024;

/// What one committed batch counted (applied to the Prometheus counters after commit).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub unique: u64,
    pub duplicate: u64,
    pub merged: u64,
    pub revised: u64,
    pub rekeyed: u64,
    pub tombstone: u64,
    pub unreadable: u64,
}

/// How the engine behaves.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub window_ms: i64,
    pub attach: bool,
    pub precedence: Precedence,
    pub cache_keys: usize,
    pub cache_bytes: usize,
    /// Where key states are read from (`storage`); `None`: the state file's `keys`.
    pub key_states: Option<Arc<dyn KeyStates>>,
    /// Whether emissions go out as records ([`Prepared::records`]) when a batch allows: the
    /// store after this processor takes them as they are ([`agentcol_component::AgentInput`]).
    pub records_out: bool,
}

/// A cached key (by its row id): its state in the stored binary form (a fraction of the
/// decoded size).
#[derive(Debug)]
struct Cached {
    /// The key, to tell a 64-bit id collision.
    text: Arc<str>,
    loc: Loc,
    blob: Box<[u8]>,
    /// A state of one observation cached as that observation's text ([`Lazy::Text`]): `blob`
    /// is then the state without its fields, which are read back from the text when the key
    /// comes again.
    json: Option<Box<str>>,
    pending: bool,
    due_ms: Option<i64>,
}

/// How a lazy state ([`Staged::lazy`]) stands for its `merged.fields`.
#[derive(Debug)]
enum Lazy {
    /// The `fields` part of its stored form, encoded straight from the observation
    /// ([`codec::fields_of`]): what its own state file stores.
    Fields(Vec<u8>),
    /// The observation's text (its archive form), with `storage`: the state is then only ever
    /// cached, and most keys never come again, so the fields are not encoded at all; the cache
    /// keeps the text (a copy of what goes to the store) and a key that comes again is read
    /// back from it ([`decode_cached`]).
    Text(Box<str>),
}

/// The `fields` part of a state without fields (a [`Lazy::Text`] state's blob).
const NO_FIELDS: [u8; 1] = [0];

/// The state of a cache entry: its blob, and for a [`Lazy::Text`] entry the fields read back
/// from its observation's text (as [`Staged::materialize`] would have filled them in).
fn decode_cached(key: &EventKey, c: &Cached, precedence: &Precedence) -> Result<KeyState, String> {
    let mut st = codec::decode(key, &c.blob, c.pending, c.due_ms)?;
    if let Some(json) = &c.json {
        let mut obs: AgentRecord =
            serde_json::from_str(json).map_err(|e| format!("cached observation: {e}"))?;
        obs.key = key.clone();
        let d = st
            .merged
            .digests
            .pop_first()
            .ok_or("a cached observation without its digest")?;
        st.merged.sources.clear();
        st.merged.add_owned(obs, d, precedence);
    }
    Ok(st)
}

/// What a cache entry costs beyond its blob and key text: the map slot and the allocator's
/// rounding of the two allocations.
const ENTRY_OVERHEAD: usize = 112;

/// A key as staging finds it: where its row is, its state and that state's stored form.
type Loaded = (Loc, Option<KeyState>, Option<Box<[u8]>>);

#[derive(Debug)]
struct Staged {
    /// The key as text (`agent.event.key`), shared with the batch's decisions.
    text: Arc<str>,
    /// Its row id ([`codec::key_id`]) and where its row is.
    id: i64,
    loc: Loc,
    /// The stored form of `state` as read, while the batch has not changed it.
    blob: Option<Box<[u8]>>,
    /// `None`: absent, or deleted by this batch (a resolved provisional key).
    state: Option<KeyState>,
    dirty: bool,
    /// In [`Batch::order`] (touched by an observation, an alias move or a flush).
    touched: bool,
    /// Input position of the key's first observation in this batch.
    slot: Option<usize>,
    /// A key created by this batch from one observation: that observation (under the key),
    /// from which its first emission is made without going through `Merged::to_record`.
    first: Option<AgentRecord>,
    /// A key created by this batch from one observation (`first`) whose `merged` holds only
    /// that observation's digest and source: its `fields` part of the stored form, encoded
    /// straight from the observation ([`codec::fields_of`]), stands for `merged.fields`, which
    /// is never filled in unless something needs the whole event ([`Staged::materialize`]).
    /// Most keys of a live session are seen once per request, and building, encoding and
    /// dropping their `Merged` was a third of the cost of a new key.
    lazy: Option<Lazy>,
    /// The text of a [`Lazy::Text`] cache entry this was read from, to put it back unchanged.
    cached_json: Option<Box<str>>,
}

impl Staged {
    /// Fills in `merged.fields` of a lazy state (from `first`, which a lazy state always has).
    /// `first` is used up (its values moved into the fields) unless `keep`.
    fn materialize(&mut self, precedence: &Precedence, keep: bool) {
        if self.lazy.take().is_none() {
            return;
        }
        debug_assert!(self.first.is_some(), "a lazy state without its observation");
        let Some(st) = self.state.as_mut() else {
            return;
        };
        let Some(d) = st.merged.digests.pop_first() else {
            return;
        };
        st.merged.sources.clear();
        if keep {
            if let Some(obs) = self.first.as_ref() {
                st.merged.add_with_digest(obs, d, precedence);
            }
        } else if let Some(obs) = self.first.take() {
            st.merged.add_owned(obs, d, precedence);
        }
    }

    /// Records that the key was touched at `slot`; true the first time (the caller then appends
    /// it to the batch's order).
    fn touch(&mut self, slot: Option<usize>) -> bool {
        if let Some(n) = slot {
            self.slot = Some(self.slot.map_or(n, |o| o.min(n)));
        }
        !std::mem::replace(&mut self.touched, true)
    }
}

/// One planned emission: the merged record of a key and the tombstones it owes.
#[derive(Debug)]
struct Emission {
    key: EventKey,
    /// The revision emitted; `None` when only tombstones go out.
    revision: Option<u64>,
    source: Option<&'static str>,
    /// Input position of the key's first observation in this batch, if any.
    slot: Option<usize>,
    origin: Option<i64>,
    records: Vec<LogRecord>,
    /// The same as records, when the batch goes out as records.
    keyed: Vec<KeyedRecord>,
}

/// A batch being staged. Dropping it discards every change.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    staged: HashMap<EventKey, Staged>,
    /// Touched keys, in first-touch order.
    order: Vec<EventKey>,
    aliases: HashMap<AliasId, String>,
    /// Declared aliases in order, each with whether the database had provisional keys waiting
    /// for it (their index rows are then deleted at commit).
    alias_order: Vec<(AliasId, bool)>,
    /// The aliases this batch's observations declare, found before any is staged (first
    /// declaration in input order): a provisional observation whose alias is declared later in
    /// the same request is re-keyed on arrival instead of being staged under its provisional
    /// key and moved when the declaration comes. Only consulted for an alias not known yet,
    /// and only while no state waits under the alias's provisional keys in the database
    /// (otherwise a provisional observation must meet that state, or a duplicate would be
    /// taken for new).
    declared: HashMap<AliasId, Declared>,
    /// Provisional keys created by this batch, by alias.
    provisional: HashMap<AliasId, Vec<EventKey>>,
    origins: Vec<(i64, Vec<u8>, Arc<ResourceLogs>)>,
    decisions: Vec<DecisionRow>,
    emissions: Vec<Emission>,
    counts: Counts,
    /// Whether a pending mark was set or cleared (the pending summary must be refreshed).
    touched_pending: bool,
    /// Whether an agent record passed through (merged upstream, or a tombstone): the batch
    /// then goes out as OTLP, where its order relative to the emissions is kept.
    passed_agent: bool,
    /// How many input positions the batch's records took (before its log records').
    record_slots: usize,
}

impl Batch {
    fn decide(&mut self, row: DecisionRow) {
        let c = &mut self.counts;
        match row.decision {
            DecisionKind::Unique => c.unique += 1,
            DecisionKind::Duplicate => c.duplicate += 1,
            DecisionKind::Merged => c.merged += 1,
            DecisionKind::Revised => c.revised += 1,
            DecisionKind::Rekeyed => c.rekeyed += 1,
            DecisionKind::Tombstone => c.tombstone += 1,
        }
        self.decisions.push(row);
    }
}

/// An alias declared somewhere in the batch (see [`Batch::declared`]).
#[derive(Debug)]
struct Declared {
    turn: String,
    /// The provisional keys in the database waiting for the alias, once read (read at most
    /// once per batch, shared with [`Engine::declare`]).
    waiting: Option<Vec<String>>,
}

/// A staged batch and what must be sent downstream before it may be committed.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub output: Logs,
    /// The emissions as records, when they go out that way ([`Settings::records_out`]): to
    /// be sent with `output` (which then holds only what passed through), before it.
    pub records: Vec<KeyedRecord>,
    pub batch: Batch,
}

/// Where each input record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not an agent observation: passes through in place.
    Pass,
    /// An observation: replaced by its key's emission (at its first observation) or dropped.
    Obs,
}

pub(crate) struct Engine {
    store: Store,
    settings: Settings,
    cache: Lru<i64, Cached>,
    aliases: HashMap<AliasId, Option<String>>,
    origins: HashMap<i64, Arc<ResourceLogs>>,
    pending: (u64, Option<i64>),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Engine({:?}, {} cached keys)",
            self.store,
            self.cache.len()
        )
    }
}

/// A trace id as declared by `agent.alias.trace_id`: 32 hex digits, not all zero, lowercased.
fn trace_hex(v: &serde_json::Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0'))
        .then(|| s.to_ascii_lowercase())
}

/// The alias an observation declares: a record whose own key has a real turn and that carries
/// the turn's trace id declares `~trace:<hex>` → turn for its session.
fn declaration(obs: &AgentRecord) -> Option<(AliasId, &str)> {
    let key = &obs.key;
    if key.turn().is_empty() || key.has_alias_turn() {
        return None;
    }
    let hex = obs.get(attr::ALIAS_TRACE_ID).and_then(trace_hex)?;
    let id = AliasId {
        agent: key.agent().as_str(),
        session: key.session().to_string(),
        alias: trace_alias(&hex),
    };
    Some((id, key.turn()))
}

/// `format!("{prefix}{text}")` without the formatting machinery (once per re-keyed observation).
fn note(prefix: &str, text: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + text.len());
    s.push_str(prefix);
    s.push_str(text);
    s
}

/// Records with no place in the input, by origin.
type Loose<T> = Vec<(Option<i64>, Vec<T>)>;

/// Emissions' records (`(slot, origin, records)` each) grouped where they go: at the input
/// position of their key's first observation when `placed` says it has a place in the output,
/// else after everything, by origin (in order of first appearance).
fn group<T>(
    emissions: impl Iterator<Item = (Option<usize>, Option<i64>, Vec<T>)>,
    placed: impl Fn(usize) -> bool,
) -> (HashMap<usize, Vec<T>>, Loose<T>) {
    let mut at: HashMap<usize, Vec<T>> = HashMap::default();
    let mut loose: Loose<T> = Vec::new();
    for (slot, origin, records) in emissions {
        if records.is_empty() {
            continue;
        }
        match slot.filter(|s| placed(*s)) {
            Some(s) => at.entry(s).or_default().extend(records),
            None => match loose.iter_mut().find(|(o, _)| *o == origin) {
                Some((_, v)) => v.extend(records),
                None => loose.push((origin, records)),
            },
        }
    }
    (at, loose)
}

/// Rewrites the input's log records in place: each observation (input position `first` and
/// on, as `slots` says) goes, `at_obs` being given its position and the scope's new list to
/// put records there; everything else stays where it was. Empty scopes and resources go.
fn replace_observations(
    logs: &mut Logs,
    slots: &[Slot],
    first: usize,
    mut at_obs: impl FnMut(usize, &mut Vec<LogRecord>),
) {
    let mut slot = first;
    for rl in &mut logs.resource_logs {
        for sl in &mut rl.scope_logs {
            let records = std::mem::take(&mut sl.log_records);
            let mut out = Vec::with_capacity(records.len());
            for rec in records {
                match slots.get(slot) {
                    Some(Slot::Obs) => at_obs(slot, &mut out),
                    _ => out.push(rec),
                }
                slot += 1;
            }
            sl.log_records = out;
        }
        rl.scope_logs.retain(|s| !s.log_records.is_empty());
    }
    logs.resource_logs.retain(|r| !r.scope_logs.is_empty());
}

fn tombstone(t: &Tomb, real: &EventKey) -> AgentRecord {
    let mut r = AgentRecord::observation(
        t.key.clone(),
        t.key.kind().event_name(),
        agentcol_component::agent::Source::Otlp,
        t.time,
    );
    r.source = None;
    r.revision = Some(t.revision);
    r.superseded_by = Some(real.clone());
    r
}

/// `Merged::to_record` of a key made of one observation (with a source), from the observation
/// itself: every field comes from it, so the record is the observation with its one source, no
/// provenance and revision 0 (the debug build checks this against `to_record` every time).
fn single_record(mut r: AgentRecord) -> AgentRecord {
    r.sources = r.source.into_iter().collect();
    r.revision = Some(0);
    r.provenance.clear();
    r.superseded_by = None;
    r.observations.clear();
    r
}

fn default_template() -> ResourceLogs {
    ResourceLogs {
        resource: None,
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

impl Engine {
    pub fn new(store: Store, settings: Settings) -> Result<Engine, StateError> {
        let pending = store.pending_summary()?;
        Ok(Engine {
            cache: Lru::new(settings.cache_keys, settings.cache_bytes),
            store,
            settings,
            aliases: HashMap::default(),
            origins: HashMap::default(),
            pending,
        })
    }

    /// Keys pending emission, and the earliest due time (Unix ms).
    pub fn pending(&self) -> (u64, Option<i64>) {
        self.pending
    }

    #[cfg(test)]
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    /// Moves `key` into the batch (from the cache, else the database) and returns it.
    fn stage<'b>(
        &mut self,
        b: &'b mut Batch,
        key: &EventKey,
    ) -> Result<&'b mut Staged, StateError> {
        self.stage_keyed(b, key, None)
    }

    /// [`Self::stage`] with the key's text, when at hand.
    fn stage_keyed<'b>(
        &mut self,
        b: &'b mut Batch,
        key: &EventKey,
        text: Option<Arc<str>>,
    ) -> Result<&'b mut Staged, StateError> {
        if !b.staged.contains_key(key) {
            let text: Arc<str> = text.unwrap_or_else(|| key.text().into());
            let id = codec::key_id(&text);
            // A cached entry under the same id but another key (a collision) is dropped: the
            // cache is only a copy of the database.
            let cached = self.cache.take(&id).filter(|c| *c.text == *text);
            let mut cached_json = None;
            let (loc, state, blob) = match cached {
                Some(c) => match decode_cached(key, &c, &self.settings.precedence) {
                    Ok(st) => {
                        cached_json = c.json;
                        (c.loc, Some(st), Some(c.blob))
                    }
                    Err(e) => {
                        tracing::error!(key = %text, error = %e, "cached dedupe state of this key is unreadable; starting it afresh");
                        (c.loc, None, None)
                    }
                },
                None if self.settings.key_states.is_some() => self.load_stored(key, &text)?,
                None => match self.store.load_key(key, &text, id) {
                    Ok(Some((loc, st, blob))) => (loc, Some(st), Some(blob.into_boxed_slice())),
                    Ok(None) => (Loc::New, None, None),
                    Err(e @ StateError::Invalid { .. }) => {
                        // One unreadable row must not wedge every batch that touches its key.
                        // Its row stays where it is and is overwritten at the next commit.
                        tracing::error!(key = %text, error = %e, "dedupe state of this key is unreadable; starting it afresh");
                        (self.store.locate(&text, id)?, None, None)
                    }
                    Err(e) => return Err(e),
                },
            };
            b.staged.insert(
                key.clone(),
                Staged {
                    text,
                    id,
                    loc,
                    blob,
                    state,
                    dirty: false,
                    touched: false,
                    slot: None,
                    first: None,
                    lazy: None,
                    cached_json,
                },
            );
        }
        b.staged.get_mut(key).ok_or_else(|| StateError::Invalid {
            path: Default::default(),
            reason: "staged key vanished".into(),
        })
    }

    /// A key's state from the store that holds it (`storage`): its merged observations, and
    /// its row's revision as the one last emitted. Never pending (no window), owing nothing,
    /// origin unknown (an emission without a place in its request goes under the default
    /// resource, which the store does not keep anyway).
    fn load_stored(&self, key: &EventKey, text: &str) -> Result<Loaded, StateError> {
        let Some(ks) = &self.settings.key_states else {
            return Ok((Loc::New, None, None));
        };
        let Some(stored) = ks.load(key, text)? else {
            return Ok((Loc::New, None, None));
        };
        if stored.merged.revision() != stored.revision {
            // Observations archived elsewhere (another writer, a store without attachments):
            // the next distinct observation goes out above both.
            tracing::warn!(key = %text, archived = stored.merged.digests.len(), revision = stored.revision, "the store's archive of this key does not match its row's revision");
        }
        let mut st = KeyState::new(stored.merged, None);
        st.emitted = Some(stored.revision);
        let blob = codec::encode(&st).into_boxed_slice();
        Ok((Loc::New, Some(st), Some(blob)))
    }

    /// The real turn of an alias: this batch's declarations, then the cache, then the database.
    fn alias(&mut self, b: &Batch, id: &AliasId) -> Result<Option<String>, StateError> {
        if let Some(t) = b.aliases.get(id) {
            return Ok(Some(t.clone()));
        }
        if let Some(t) = self.aliases.get(id) {
            return Ok(t.clone());
        }
        let t = self.store.load_alias(id)?;
        if self.aliases.len() >= self.settings.cache_keys {
            self.aliases.clear();
        }
        // Negative answers are cached too: this engine is the database's only writer and
        // updates the cache when it commits a declaration.
        self.aliases.insert(id.clone(), t.clone());
        Ok(t)
    }

    /// The origin id of a resource + scope, interning its template.
    fn origin_of(&mut self, b: &mut Batch, rl: &ResourceLogs, sl: &ScopeLogs) -> i64 {
        let template = ResourceLogs {
            resource: rl.resource.clone(),
            schema_url: rl.schema_url.clone(),
            scope_logs: vec![ScopeLogs {
                scope: sl.scope.clone(),
                schema_url: sl.schema_url.clone(),
                log_records: Vec::new(),
            }],
        };
        let bytes = template.encode_to_vec();
        let id = xxhash_rust::xxh3::xxh3_64(&bytes) as i64;
        if !self.origins.contains_key(&id) && !b.origins.iter().any(|(i, _, _)| *i == id) {
            b.origins.push((id, bytes, Arc::new(template)));
        }
        id
    }

    fn template(&mut self, b: &Batch, id: Option<i64>) -> ResourceLogs {
        let Some(id) = id else {
            return default_template();
        };
        if let Some(t) = self.origins.get(&id) {
            return (**t).clone();
        }
        if let Some((_, _, t)) = b.origins.iter().find(|(i, _, _)| *i == id) {
            return (**t).clone();
        }
        match self.store.load_origin(id) {
            Ok(Some(bytes)) => match ResourceLogs::decode(bytes.as_slice()) {
                Ok(t) if t.scope_logs.len() == 1 => {
                    if self.origins.len() >= ORIGIN_CACHE {
                        self.origins.clear();
                    }
                    let t = Arc::new(t);
                    self.origins.insert(id, t.clone());
                    (*t).clone()
                }
                _ => default_template(),
            },
            _ => default_template(),
        }
    }

    /// Stages one observation found at input position `slot`; `text` is its key's text when
    /// the sender had it.
    fn observe(
        &mut self,
        b: &mut Batch,
        obs: AgentRecord,
        slot: usize,
        origin: i64,
        text: Option<String>,
    ) -> Result<(), StateError> {
        let obs_text = text.unwrap_or_else(|| obs.key.text());
        debug_assert_eq!(obs_text, obs.key.text());
        let json = obs.observation_json_keyed(&obs_text);
        // Read now: the observation itself is used up below (moved into the state).
        let declared = declaration(&obs).map(|(id, turn)| (id, turn.to_string()));
        let d = digest(&json);
        // What the store's archive row of it needs, known here (only attachments need it).
        let head = self.settings.attach.then(|| AttachedHead {
            digest: d.clone(),
            key: obs_text.clone(),
            source: obs.source,
            time_unix_nano: obs.time_unix_nano,
        });
        let source = obs.source.map(|s| s.as_str());
        let mut key = obs.key.clone();
        let mut text: Option<Arc<str>> = None;
        if key.has_alias_turn() {
            let id = AliasId::of(&key);
            // A known alias wins over one declared in this request (the first declaration is
            // kept), so the request's declarations are consulted last.
            let turn = match self.alias(b, &id)? {
                Some(t) => Some(t),
                None => match b.declared.get_mut(&id) {
                    Some(d) => {
                        if d.waiting.is_none() {
                            d.waiting = Some(self.store.provisional_keys(&id)?);
                        }
                        d.waiting
                            .as_ref()
                            .is_some_and(|w| w.is_empty())
                            .then(|| d.turn.clone())
                    }
                    None => None,
                },
            };
            if let Some(turn) = turn {
                let real = key.with_turn(&turn);
                let real_text: Arc<str> = real.text().into();
                b.decide(DecisionRow {
                    key: real_text.clone(),
                    decision: DecisionKind::Rekeyed,
                    revision: None,
                    source,
                    note: Some(note("from ", &obs_text)),
                });
                key = real;
                text = Some(real_text);
            }
        }
        let text = text.unwrap_or_else(|| obs_text.into());
        let entry = self.stage_keyed(b, &key, Some(text))?;
        let first_touch = entry.touch(Some(slot));
        let precedence = &self.settings.precedence;
        let created = entry.state.is_none();
        // The one case of a lazy state: a new key, its first observation, with a source.
        let single = created && obs.source.is_some();
        if !created {
            // A second observation of the key: its whole event is needed.
            entry.materialize(precedence, false);
            entry.first = None;
        }
        let st = entry
            .state
            .get_or_insert_with(|| KeyState::new(Merged::new(key.clone()), Some(origin)));
        // The observation, when it becomes the new key's `first`.
        let mut first = None;
        let added = if single {
            let src = obs.source.unwrap_or(Source::Otlp);
            let rank = precedence.rank(key.agent(), src);
            entry.lazy = Some(if self.settings.key_states.is_some() {
                // Read back from the text if the key comes again: check that it reads back.
                #[cfg(debug_assertions)]
                {
                    let mut back: AgentRecord = serde_json::from_str(&json).unwrap_or_else(|e| {
                        panic!("the observation text of {key} does not read back: {e}")
                    });
                    back.key = obs.key.clone();
                    debug_assert_eq!(back, obs, "the observation its text reads back as");
                }
                Lazy::Text(json.as_str().into())
            } else {
                let fields = codec::fields_of(&obs, rank);
                #[cfg(debug_assertions)]
                {
                    let mut m = Merged::new(key.clone());
                    m.add_with_digest(&obs, d.clone(), precedence);
                    debug_assert_eq!(fields, codec::fields(&m), "fields_of of {key}");
                }
                Lazy::Fields(fields)
            });
            st.merged.digests.insert(d);
            st.merged.sources.insert(src);
            first = Some(obs);
            Added::New { changed: true }
        } else {
            st.merged.add_owned(obs, d, precedence)
        };
        let revision = Some(st.merged.revision());
        let decision = match added {
            Added::Duplicate => DecisionKind::Duplicate,
            Added::New { .. } => {
                entry.dirty = true;
                if let Some(head) = head {
                    st.push_unsent(json, head);
                }
                if created {
                    DecisionKind::Unique
                } else {
                    DecisionKind::Merged
                }
            }
        };
        let text = entry.text.clone();
        if first_touch {
            b.order.push(key.clone());
        }
        if created && key.has_alias_turn() {
            b.provisional
                .entry(AliasId::of(&key))
                .or_default()
                .push(key.clone());
        }
        b.decide(DecisionRow {
            key: text,
            decision,
            revision,
            source,
            note: None,
        });
        let Some((id, turn)) = declared else {
            if let Some(mut obs) = first {
                if let Some(entry) = b.staged.get_mut(&key) {
                    obs.key = key;
                    entry.first = Some(obs);
                }
            }
            return Ok(());
        };
        if let Some(mut obs) = first {
            // In place before the declaration: folding provisional state into this key (if
            // the alias resolves to it) materializes its lazy state from it.
            if let Some(entry) = b.staged.get_mut(&key) {
                obs.key = key.clone();
                entry.first = Some(obs);
            }
        }
        self.declare(b, id, &turn)?;
        if single {
            let precedence = &self.settings.precedence;
            if let Some(entry) = b.staged.get_mut(&key) {
                // Still the key's only observation (an alias this observation declared may
                // have folded provisional state into the key)?
                if entry
                    .state
                    .as_ref()
                    .is_none_or(|st| st.merged.digests.len() != 1)
                {
                    entry.materialize(precedence, false);
                    entry.first = None;
                }
            }
        }
        Ok(())
    }

    /// Learns an alias and folds every state held under its provisional keys into the real keys.
    fn declare(&mut self, b: &mut Batch, id: AliasId, turn: &str) -> Result<(), StateError> {
        match self.alias(b, &id)? {
            Some(t) if t == turn => return Ok(()),
            Some(t) => {
                tracing::warn!(agent = id.agent, session = %id.session, alias = %id.alias, known = %t, declared = %turn, "conflicting trace alias declaration ignored; the first one is kept");
                return Ok(());
            }
            None => {}
        }
        b.aliases.insert(id.clone(), turn.to_string());
        let mut provisional: Vec<EventKey> = Vec::new();
        let waiting = match b.declared.get_mut(&id).and_then(|d| d.waiting.take()) {
            Some(w) => w,
            None => self.store.provisional_keys(&id)?,
        };
        b.alias_order.push((id.clone(), !waiting.is_empty()));
        for text in waiting {
            match text.parse::<EventKey>() {
                Ok(k) => provisional.push(k),
                Err(e) => {
                    tracing::warn!(key = %text, error = %e, "unreadable provisional key skipped")
                }
            }
        }
        if let Some(v) = b.provisional.get(&id) {
            provisional.extend(v.iter().cloned());
        }
        provisional.sort();
        provisional.dedup();
        for p in provisional {
            let precedence = self.settings.precedence.clone();
            let pentry = self.stage(b, &p)?;
            // Its observation may become the real key's `first` (below).
            pentry.materialize(&precedence, true);
            let Some(ps) = pentry.state.take() else {
                continue;
            };
            pentry.dirty = true;
            let pfirst = pentry.first.take();
            let pslot = pentry.slot;
            let real = p.with_turn(turn);
            if self.stage(b, &real)?.touch(pslot) {
                b.order.push(real.clone());
            }
            let tomb = ps.emitted.map(|e| Tomb {
                key: p.clone(),
                revision: e + 1,
                time: ps
                    .merged
                    .value("time")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0),
            });
            let pdue = ps.due_ms;
            let rentry = self.stage(b, &real)?;
            rentry.materialize(&precedence, false);
            let fresh = rentry.state.is_none() && ps.emitted.is_none();
            let mut rs = match rentry.state.take() {
                None => KeyState {
                    merged: ps.merged.rekey(real.clone()),
                    emitted: None,
                    pending: ps.pending,
                    due_ms: ps.due_ms,
                    unsent: ps.unsent,
                    unsent_heads: ps.unsent_heads,
                    supersedes: Vec::new(),
                    origin: ps.origin,
                },
                Some(mut rs) => {
                    rs.merged.join(&ps.merged);
                    rs.extend_unsent(ps.unsent, ps.unsent_heads);
                    if ps.pending {
                        rs.due_ms = match (rs.pending, rs.due_ms, pdue) {
                            (true, Some(a), Some(c)) => Some(a.min(c)),
                            (true, Some(a), None) => Some(a),
                            _ => pdue,
                        };
                        rs.pending = true;
                    }
                    if rs.origin.is_none() {
                        rs.origin = ps.origin;
                    }
                    rs
                }
            };
            rs.supersedes.extend(tomb);
            let revision = Some(rs.merged.revision());
            rentry.state = Some(rs);
            rentry.dirty = true;
            // A provisional key made by this batch from one observation, moved to a real key
            // that had nothing: still that one observation, under the real key.
            rentry.first = match pfirst {
                Some(mut obs) if fresh => {
                    obs.key = real.clone();
                    Some(obs)
                }
                _ => None,
            };
            let text = rentry.text.clone();
            b.decide(DecisionRow {
                key: text,
                decision: DecisionKind::Rekeyed,
                revision,
                source: None,
                note: Some(format!("from {p}")),
            });
        }
        Ok(())
    }

    /// Stages a request's observations. With no settle window, plans their emission; with one,
    /// marks their keys pending. The output holds what must be accepted downstream before the
    /// batch may be committed: pass-through records in place, plus (no window) the emissions.
    /// `records` are observations handed over as records ([`agentcol_component::AgentInput`]),
    /// at input positions before those of `logs`'s log records.
    pub fn ingest(
        &mut self,
        logs: Logs,
        records: Vec<KeyedRecord>,
        now_ms: i64,
    ) -> Result<Prepared, StateError> {
        self.store.begin_read()?;
        let r = self.ingest_in_read(logs, records, now_ms);
        self.store.end_read();
        r
    }

    fn ingest_in_read(
        &mut self,
        mut logs: Logs,
        records: Vec<KeyedRecord>,
        now_ms: i64,
    ) -> Result<Prepared, StateError> {
        let mut b = Batch::default();
        let mut slots = Vec::with_capacity(logs.resource_logs.len() + records.len());
        // Decoded first, observed after: the aliases the request declares are known before any
        // of its observations is staged.
        let mut observations = Vec::with_capacity(records.len());
        let mut slot = 0usize;
        // Records have no resource or scope: their origin is the empty one.
        let mut record_origin = None;
        let mut not_observations = Vec::new();
        for KeyedRecord { record: r, key, .. } in records {
            if r.revision.is_some() || r.superseded_by.is_some() {
                // Not an observation: passed through as the log record it stands for.
                not_observations.push(r.into_log_record_keyed(key));
                continue;
            }
            let o = *record_origin.get_or_insert_with(|| {
                self.origin_of(&mut b, &ResourceLogs::default(), &ScopeLogs::default())
            });
            if let Some((id, turn)) = declaration(&r) {
                b.declared.entry(id).or_insert_with(|| Declared {
                    turn: turn.to_string(),
                    waiting: None,
                });
            }
            observations.push((r, slot, o, Some(key)));
            slots.push(Slot::Obs);
            slot += 1;
        }
        b.record_slots = slot;
        if !not_observations.is_empty() {
            let mut passed = agentcol_component::data::logs_from(not_observations);
            passed.resource_logs.append(&mut logs.resource_logs);
            logs = passed;
        }
        for ri in 0..logs.resource_logs.len() {
            for si in 0..logs.resource_logs[ri].scope_logs.len() {
                let mut origin = None;
                for i in 0..logs.resource_logs[ri].scope_logs[si].log_records.len() {
                    // An observation's log record is replaced by its emission (or dropped), so
                    // its strings are moved out; anything passed through stays as it came.
                    let rec = &mut logs.resource_logs[ri].scope_logs[si].log_records[i];
                    let read = AgentRecord::take_from_log_record(rec, |r| {
                        r.revision.is_none() && r.superseded_by.is_none()
                    });
                    let rl = &logs.resource_logs[ri];
                    let sl = &rl.scope_logs[si];
                    let kind = match read {
                        Err(RecordError::NotAgent) => Slot::Pass,
                        Err(e) => {
                            tracing::debug!(error = %e, "unreadable agent record passed through");
                            b.counts.unreadable += 1;
                            Slot::Pass
                        }
                        // Already merged (another dedupe upstream) or a tombstone: not an
                        // observation, passed through untouched.
                        Ok(r) if r.revision.is_some() || r.superseded_by.is_some() => {
                            b.passed_agent = true;
                            Slot::Pass
                        }
                        Ok(r) => {
                            let o = match origin {
                                Some(o) => o,
                                None => *origin.insert(self.origin_of(&mut b, rl, sl)),
                            };
                            if let Some((id, turn)) = declaration(&r) {
                                b.declared.entry(id).or_insert_with(|| Declared {
                                    turn: turn.to_string(),
                                    waiting: None,
                                });
                            }
                            observations.push((r, slot, o, None));
                            Slot::Obs
                        }
                    };
                    slots.push(kind);
                    slot += 1;
                }
            }
        }
        // Each observation stages at most two keys and makes at most two decisions (a re-keyed
        // one: both, which is most of a Codex request's).
        b.staged.reserve(observations.len());
        b.order.reserve(observations.len());
        b.decisions.reserve(2 * observations.len());
        for (r, slot, o, text) in observations {
            self.observe(&mut b, r, slot, o, text)?;
        }
        let keyed = self.settings.records_out && self.settings.window_ms == 0 && !b.passed_agent;
        if self.settings.window_ms == 0 {
            self.plan(&mut b, false, keyed);
        } else {
            self.mark_pending(&mut b, now_ms);
        }
        let records = if keyed {
            self.assemble_keyed(&mut logs, &slots, &mut b)
        } else {
            self.assemble(&mut logs, &slots, &mut b);
            Vec::new()
        };
        Ok(Prepared {
            output: logs,
            records,
            batch: b,
        })
    }

    /// Settle window: every touched key that owes an emission becomes pending. A key never
    /// emitted is due one window after its first observation; a key already emitted (a later
    /// revision) or owing a tombstone is due at once.
    fn mark_pending(&mut self, b: &mut Batch, now_ms: i64) {
        let window = self.settings.window_ms;
        for key in &b.order {
            let Some(s) = b.staged.get_mut(key) else {
                continue;
            };
            let Some(st) = s.state.as_mut() else {
                continue;
            };
            if !st.needs_emit() {
                continue;
            }
            let urgent = st.emitted.is_some() || !st.supersedes.is_empty();
            let due = if urgent {
                now_ms
            } else {
                now_ms.saturating_add(window)
            };
            let due = match (st.pending, st.due_ms) {
                (true, Some(d)) => d.min(due),
                _ => due,
            };
            if !st.pending || st.due_ms != Some(due) {
                st.pending = true;
                st.due_ms = Some(due);
                s.dirty = true;
            }
            b.touched_pending = true;
        }
    }

    /// Plans the emission of every touched key that owes one. `flush`: the keys are pending
    /// ones taken by the flush task; those owing nothing have their mark cleared. `keyed`: as
    /// records ([`Emission::keyed`]), not log records.
    fn plan(&mut self, b: &mut Batch, flush: bool, keyed: bool) {
        b.emissions.reserve(b.order.len());
        let attach = self.settings.attach;
        let precedence = &self.settings.precedence;
        for key in &b.order {
            let Some(s) = b.staged.get_mut(key) else {
                continue;
            };
            // The first emission of a key made of one observation is that observation; any
            // other emission needs the whole event.
            let fast = s.first.is_some()
                && s.state
                    .as_ref()
                    .is_some_and(|st| st.emitted.is_none() && st.merged.digests.len() == 1);
            if !fast {
                s.materialize(precedence, false);
            }
            let Some(st) = s.state.as_mut() else {
                continue;
            };
            if !st.needs_emit() {
                if flush && st.pending {
                    st.pending = false;
                    st.due_ms = None;
                    st.clear_unsent();
                    s.dirty = true;
                    b.touched_pending = true;
                }
                continue;
            }
            let mut records = Vec::new();
            let mut keyed_records = Vec::new();
            if keyed {
                keyed_records.reserve(1 + st.supersedes.len());
            } else {
                records.reserve(1 + st.supersedes.len());
            }
            let new_revision = st.has_new_revision();
            let mut source = None;
            if new_revision {
                #[cfg(debug_assertions)]
                let expected = {
                    let mut m = st.merged.clone();
                    if let (Some(_), Some(obs)) = (&s.lazy, &s.first) {
                        if let Some(d) = m.digests.pop_first() {
                            m.sources.clear();
                            m.add_with_digest(obs, d, precedence);
                        }
                    }
                    m.to_record()
                };
                let mut r = match s.first.take() {
                    Some(obs) if fast => single_record(obs),
                    _ => st.merged.to_record(),
                };
                #[cfg(debug_assertions)]
                debug_assert_eq!(r, expected);
                source = r.source.map(|s| s.as_str());
                let mut heads = Vec::new();
                if attach {
                    (r.observations, heads) = st.take_unsent();
                }
                // A first emission of one observation is that observation (its text under the
                // key it came with).
                let archive = (fast && r.observations.len() == 1).then_some(0);
                let text = String::from(&*s.text);
                if keyed {
                    #[cfg(debug_assertions)]
                    debug_assert_eq!(
                        AgentRecord::from_log_record(
                            &r.clone().into_log_record_keyed(text.clone())
                        )
                        .as_ref(),
                        Ok(&r),
                        "the record the store would read back"
                    );
                    keyed_records.push(KeyedRecord {
                        record: r,
                        key: text,
                        archive,
                        heads,
                    });
                } else {
                    records.push(r.into_log_record_keyed(text));
                }
            }
            for t in &st.supersedes {
                let r = tombstone(t, key);
                if keyed {
                    let text = r.key.to_string();
                    keyed_records.push(KeyedRecord::new(r, text));
                } else {
                    records.push(r.into_log_record());
                }
            }
            b.emissions.push(Emission {
                key: key.clone(),
                revision: new_revision.then(|| st.merged.revision()),
                source,
                slot: s.slot,
                origin: st.origin,
                records,
                keyed: keyed_records,
            });
        }
    }

    /// Builds the output in place: pass-through records stay where they were, each emission
    /// takes the place of its key's first observation in this batch (tombstones right after
    /// it), other observations go; emissions with no place in the input (keys moved by an
    /// alias, flushes) are appended under their origin's resource and scope.
    fn assemble(&mut self, logs: &mut Logs, slots: &[Slot], b: &mut Batch) {
        let first = b.record_slots;
        // A key first observed in a record (not a log record) has no place in the output.
        let (mut at, loose) = group(
            b.emissions
                .iter_mut()
                .map(|e| (e.slot, e.origin, std::mem::take(&mut e.records))),
            |s| s >= first,
        );
        replace_observations(logs, slots, first, |slot, out| {
            if let Some(e) = at.remove(&slot) {
                out.extend(e);
            }
        });
        for (origin, records) in loose {
            let mut rl = self.template(b, origin);
            match rl.scope_logs.first_mut() {
                Some(sl) => sl.log_records = records,
                None => continue,
            }
            logs.resource_logs.push(rl);
        }
    }

    /// [`Self::assemble`] for emissions as records: the records in the order `assemble` would
    /// place their log records (each at its key's first observation, the rest after, by
    /// origin), and `logs` keeps only what passed through.
    fn assemble_keyed(
        &mut self,
        logs: &mut Logs,
        slots: &[Slot],
        b: &mut Batch,
    ) -> Vec<KeyedRecord> {
        let (mut at, loose) = group(
            b.emissions
                .iter_mut()
                .map(|e| (e.slot, e.origin, std::mem::take(&mut e.keyed))),
            |_| true,
        );
        let n = at
            .values()
            .chain(loose.iter().map(|(_, v)| v))
            .map(Vec::len)
            .sum();
        let mut out = Vec::with_capacity(n);
        for (slot, kind) in slots.iter().enumerate() {
            if *kind == Slot::Obs {
                if let Some(e) = at.remove(&slot) {
                    out.extend(e);
                }
            }
        }
        for (_, records) in loose {
            out.extend(records);
        }
        replace_observations(logs, slots, b.record_slots, |_, _| {});
        out
    }

    /// Takes up to `limit` pending keys that are due (all pending keys when `all`), and plans
    /// their emission. `None` when nothing is due.
    pub fn take_due(
        &mut self,
        now_ms: i64,
        all: bool,
        limit: usize,
    ) -> Result<Option<Prepared>, StateError> {
        let keys = self
            .store
            .due_keys(if all { i64::MAX } else { now_ms }, limit)?;
        if keys.is_empty() {
            self.pending = self.store.pending_summary()?;
            return Ok(None);
        }
        let mut b = Batch {
            touched_pending: true,
            ..Batch::default()
        };
        for text in keys {
            let key = match text.parse::<EventKey>() {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(key = %text, error = %e, "pending dedupe key is unreadable; dropping its mark");
                    self.store.clear_pending(&text)?;
                    continue;
                }
            };
            let entry = self.stage(&mut b, &key)?;
            let absent = entry.state.is_none();
            if entry.touch(None) {
                b.order.push(key);
            }
            if absent {
                self.store.clear_pending(&text)?;
            }
        }
        self.plan(&mut b, true, false);
        let mut output = Logs::default();
        self.assemble(&mut output, &[], &mut b);
        Ok(Some(Prepared {
            output,
            records: Vec::new(),
            batch: b,
        }))
    }

    /// Commits a batch whose output downstream accepted (or that had none): the planned
    /// emissions are recorded as emitted, and everything is written in one transaction.
    pub fn commit(&mut self, mut b: Batch, now_ms: i64) -> Result<Counts, StateError> {
        let emissions = std::mem::take(&mut b.emissions);
        let mut rows = Vec::new();
        for e in &emissions {
            let Some(s) = b.staged.get_mut(&e.key) else {
                continue;
            };
            let Some(st) = s.state.as_mut() else {
                continue;
            };
            if let Some(r) = e.revision {
                st.emitted = Some(st.emitted.map_or(r, |x| x.max(r)));
                if r > 0 {
                    rows.push(DecisionRow {
                        key: s.text.clone(),
                        decision: DecisionKind::Revised,
                        revision: Some(r),
                        source: e.source,
                        note: None,
                    });
                }
            }
            for t in std::mem::take(&mut st.supersedes) {
                rows.push(DecisionRow {
                    key: t.key.to_string().into(),
                    decision: DecisionKind::Tombstone,
                    revision: Some(t.revision),
                    source: None,
                    note: Some(format!("superseded by {}", e.key)),
                });
            }
            st.clear_unsent();
            b.touched_pending |= st.pending;
            st.pending = false;
            st.due_ms = None;
            s.dirty = true;
        }
        for r in rows {
            b.decide(r);
        }
        let mut counts: BTreeMap<DecisionKind, u64> = BTreeMap::new();
        for d in &b.decisions {
            *counts.entry(d.decision).or_default() += 1;
        }
        // The stored form of every changed state (kept for the cache afterwards).
        for s in b.staged.values_mut() {
            if s.dirty {
                s.blob = s.state.as_ref().map(|st| {
                    let fields = match &s.lazy {
                        Some(Lazy::Fields(f)) => Some(f.as_slice()),
                        Some(Lazy::Text(_)) => Some(&NO_FIELDS[..]),
                        None => None,
                    };
                    codec::encode_with(st, fields).into_boxed_slice()
                });
            }
        }
        let locs: Vec<Loc>;
        {
            let mut w = Write {
                decisions: &b.decisions,
                counts,
                now_ms,
                ..Write::default()
            };
            // With `storage`, key states are the store's rows, committed downstream already.
            let own_keys = self.settings.key_states.is_none();
            for s in b.staged.values().filter(|_| own_keys) {
                if !s.dirty {
                    continue;
                }
                debug_assert!(
                    !matches!(s.lazy, Some(Lazy::Text(_))),
                    "a state without its fields is only ever cached"
                );
                match (&s.state, &s.blob) {
                    (Some(st), Some(blob)) => {
                        w.upserts.push(Upsert {
                            text: &s.text,
                            id: s.id,
                            loc: s.loc,
                            state: blob,
                            pending: st.pending,
                            due_ms: st.due_ms,
                        });
                    }
                    _ => w.deletes.push((&s.text, s.id, s.loc)),
                }
            }
            for (id, waiting) in &b.alias_order {
                if let Some(turn) = b.aliases.get(id) {
                    w.aliases.push((id, turn, *waiting));
                }
            }
            for (id, keys) in &b.provisional {
                if b.aliases.contains_key(id) {
                    continue;
                }
                for k in keys {
                    if let Some(s) = b.staged.get(k).filter(|s| s.state.is_some()) {
                        w.provisional.push((id.clone(), &s.text));
                    }
                }
            }
            for (id, bytes, _) in &b.origins {
                w.origins.push((*id, bytes));
            }
            self.store.write(&mut w)?;
            locs = w.upserts.iter().map(|u| u.loc).collect();
        }
        // Where the new keys landed: the same walk over the unchanged map, so the same order.
        let mut locs = locs.into_iter();
        for s in b.staged.values_mut() {
            if s.dirty && s.state.is_some() && s.blob.is_some() {
                if let Some(loc) = locs.next() {
                    s.loc = loc;
                }
            }
        }
        for (_, s) in b.staged.drain() {
            if let (Some(st), Some(blob)) = (s.state, s.blob) {
                let json = match (s.dirty, s.lazy) {
                    (true, Some(Lazy::Text(t))) => Some(t),
                    (true, _) => None,
                    (false, _) => s.cached_json,
                };
                let weight = blob.len()
                    + json.as_ref().map_or(0, |j| j.len())
                    + s.text.len()
                    + ENTRY_OVERHEAD;
                let c = Cached {
                    text: s.text,
                    loc: s.loc,
                    blob,
                    json,
                    pending: st.pending,
                    due_ms: st.due_ms,
                };
                self.cache.put(s.id, c, weight);
            }
        }
        if self.aliases.len() + b.aliases.len() > self.settings.cache_keys {
            self.aliases.clear();
        }
        for (id, turn) in b.aliases.drain() {
            self.aliases.insert(id, Some(turn));
        }
        if self.origins.len() + b.origins.len() > ORIGIN_CACHE {
            self.origins.clear();
        }
        for (id, _, t) in b.origins.drain(..) {
            self.origins.insert(id, t);
        }
        if b.touched_pending {
            // The commit is done: a failure to read the summary only delays the flush task.
            match self.store.pending_summary() {
                Ok(p) => self.pending = p,
                Err(e) => tracing::warn!(error = %e, "cannot read the pending summary"),
            }
        }
        Ok(b.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::agent::{Agent, Kind, Source};

    fn engine(dir: &std::path::Path, cache_keys: usize) -> Engine {
        let store = Store::open(&dir.join("s.db"), 10).unwrap();
        Engine::new(
            store,
            Settings {
                window_ms: 0,
                attach: false,
                precedence: Precedence::default(),
                cache_keys,
                cache_bytes: usize::MAX,
                key_states: None,
                records_out: false,
            },
        )
        .unwrap()
    }

    fn request(items: std::ops::Range<u32>) -> Logs {
        let records = items
            .map(|i| {
                let key = EventKey::new(
                    Agent::ClaudeCode,
                    "s",
                    Some("p"),
                    Some(&format!("toolu_{i}")),
                    Kind::ToolCall,
                )
                .unwrap();
                AgentRecord::observation(key, "agent.tool.call", Source::Hook, 1).to_log_record()
            })
            .collect();
        agentcol_component::data::logs_from(records)
    }

    #[test]
    fn memory_is_bounded_by_cache_keys_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), 10);
        for round in 0..5 {
            let p = e
                .ingest(request(round * 20..round * 20 + 20), Vec::new(), 0)
                .unwrap();
            assert_eq!(
                p.output.resource_logs[0].scope_logs[0].log_records.len(),
                20
            );
            let c = e.commit(p.batch, 0).unwrap();
            assert_eq!(c.unique, 20);
            assert!(e.cached_keys() <= 10, "{}", e.cached_keys());
        }
        // Every key, cold or hot, is still known.
        let p = e.ingest(request(0..100), Vec::new(), 0).unwrap();
        assert!(p.output.resource_logs.is_empty(), "all duplicates");
        assert_eq!(e.commit(p.batch, 0).unwrap().duplicate, 100);
    }

    #[test]
    fn a_dropped_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), 1000);
        let p = e.ingest(request(0..3), Vec::new(), 0).unwrap();
        drop(p);
        let p = e.ingest(request(0..3), Vec::new(), 0).unwrap();
        let c = e.commit(p.batch, 0).unwrap();
        assert_eq!((c.unique, c.duplicate), (3, 0));
    }

    #[test]
    fn trace_ids_are_validated_and_lowercased() {
        assert_eq!(
            trace_hex(&"4BF92F3577B34DA6A3CE929D0E0E4736".into()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(trace_hex(&"00000000000000000000000000000000".into()).is_none());
        assert!(trace_hex(&"4bf92f".into()).is_none());
        assert!(trace_hex(&serde_json::Value::from(7)).is_none());
    }
}
