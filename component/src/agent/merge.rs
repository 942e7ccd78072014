//! The order-independent merge of observations into one event per key.
//!
//! Several channels (and the same channel several times) may observe one logical event. Each
//! observation is split into *fields* (`name`, `time`, `trace_id`, `span_id`, `body` and one
//! `a:<key>` per attribute); a merged event keeps, per field, the value from the best
//! observation under one total order:
//!
//! 1. higher channel **rank** wins (from [`Precedence`], per agent; unlisted channels rank 0);
//! 2. on equal rank, `time` keeps the earliest non-zero value; every other field keeps the
//!    value whose JSON text is longer, then greater (so richer content wins, deterministically);
//! 3. on a full tie, the greater source name.
//!
//! Because each field is a maximum under a total order, [`Merged::join`] is commutative,
//! associative and idempotent (a join semilattice): any permutation and any duplication of the
//! same observations gives the same merged event, byte for byte. The set of observation
//! digests makes duplicates recognisable and gives the revision: the number of distinct
//! observations merged, minus one, which is also independent of arrival order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::json;
use super::record::AgentRecord;
use super::{Agent, EventKey, Source};

/// Channel precedence per agent, best first (the default follows DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Precedence {
    /// Codex channels, best first.
    pub codex: Vec<Source>,
    /// Claude Code channels, best first.
    pub claude_code: Vec<Source>,
}

impl Default for Precedence {
    fn default() -> Self {
        Precedence {
            codex: vec![
                Source::AppServer,
                Source::Rollout,
                Source::Hook,
                Source::Otlp,
            ],
            claude_code: vec![Source::Transcript, Source::Hook, Source::Otlp],
        }
    }
}

impl Precedence {
    /// The rank of `source` for `agent`: higher is better, 0 when unlisted.
    pub fn rank(&self, agent: Agent, source: Source) -> u32 {
        let list = match agent {
            Agent::Codex => &self.codex,
            Agent::ClaudeCode => &self.claude_code,
        };
        list.iter()
            .position(|s| *s == source)
            .map(|i| (list.len() - i) as u32)
            .unwrap_or(0)
    }
}

/// One field of a merged event and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Rank of the source it came from.
    pub rank: u32,
    /// The source.
    pub source: Source,
    /// The value.
    pub value: Json,
}

/// `serde_json::to_string(v)`, written by the component's writer (the same text, faster).
fn json_text(v: &Json) -> String {
    let mut s = String::with_capacity(json::estimate(v));
    json::value(&mut s, v);
    s
}

/// Whether `a` and `b` certainly have the same JSON text, decided without writing either:
/// the same structure with equal strings, booleans and integers. Floats (and an integer
/// against a float) answer false, which only sends the caller to compare the texts. A second
/// observation of a key mostly repeats the first one's values, and writing both texts of
/// every such field was most of the cost of merging it.
fn same_text(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::Bool(x), Json::Bool(y)) => x == y,
        (Json::String(x), Json::String(y)) => x == y,
        (Json::Number(x), Json::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.is_i64() && y.is_i64() && x.as_i64() == y.as_i64(),
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_text(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_text(vx, vy))
        }
        _ => false,
    }
}

/// The total order of candidate values for field `name` (greater wins).
fn order(name: &str, a: &Field, b: &Field) -> Ordering {
    a.rank.cmp(&b.rank).then_with(|| {
        let by_value = if name == "time" {
            // Earliest wins: smaller is "greater".
            let t = |f: &Field| f.value.as_u64().unwrap_or(u64::MAX);
            t(b).cmp(&t(a))
        } else if same_text(&a.value, &b.value) {
            Ordering::Equal
        } else {
            let (ta, tb) = (json_text(&a.value), json_text(&b.value));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(&tb))
        };
        by_value.then_with(|| a.source.as_str().cmp(b.source.as_str()))
    })
}

/// What [`Merged::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The same observation was merged before: nothing changed.
    Duplicate,
    /// A new observation; `changed` tells whether any field's value or the sources changed.
    New {
        /// Whether the merged content changed.
        changed: bool,
    },
}

/// One logical event: the field-wise best of every observation of its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merged {
    /// The identity.
    pub key: EventKey,
    /// Field → best value.
    pub fields: BTreeMap<String, Field>,
    /// Every channel that saw it.
    pub sources: BTreeSet<Source>,
    /// Digests of the distinct observations merged.
    pub digests: BTreeSet<String>,
}

/// The digest of an observation's archive form (xxh3-128, hex).
pub fn digest(observation_json: &str) -> String {
    // `format!("{:032x}", h)`, without the formatting machinery (this runs per observation).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = xxhash_rust::xxh3::xxh3_128(observation_json.as_bytes());
    let mut s = String::with_capacity(32);
    for i in (0..32).rev() {
        s.push(HEX[((h >> (4 * i)) & 15) as usize] as char);
    }
    s
}

impl Merged {
    /// An empty event for `key`.
    pub fn new(key: EventKey) -> Self {
        Merged {
            key,
            fields: BTreeMap::new(),
            sources: BTreeSet::new(),
            digests: BTreeSet::new(),
        }
    }

    /// The event made of one observation.
    pub fn from_observation(obs: &AgentRecord, prec: &Precedence) -> Self {
        let mut m = Merged::new(obs.key.clone());
        m.add(obs, prec);
        m
    }

    fn offer(&mut self, name: String, cand: Field) -> bool {
        use std::collections::btree_map::Entry;
        match self.fields.entry(name) {
            Entry::Vacant(v) => {
                v.insert(cand);
                true
            }
            Entry::Occupied(mut o) => {
                if order(o.key(), o.get(), &cand) == Ordering::Less {
                    o.insert(cand);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Merges one observation (its key is not checked: callers group by key).
    pub fn add(&mut self, obs: &AgentRecord, prec: &Precedence) -> Added {
        let d = digest(&obs.observation_json());
        self.add_with_digest(obs, d, prec)
    }

    /// [`Self::add`] with the digest already computed. A duplicate costs no copy; otherwise
    /// the observation is copied once and merged by [`Self::add_owned`].
    pub fn add_with_digest(&mut self, obs: &AgentRecord, d: String, prec: &Precedence) -> Added {
        if self.digests.contains(&d) {
            return Added::Duplicate;
        }
        self.add_owned(obs.clone(), d, prec)
    }

    /// Merges an observation the caller is done with, its digest already computed: its values
    /// are moved into the fields.
    pub fn add_owned(&mut self, obs: AgentRecord, d: String, prec: &Precedence) -> Added {
        if !self.digests.insert(d) {
            return Added::Duplicate;
        }
        let source = obs.source.unwrap_or(Source::Otlp);
        let rank = prec.rank(self.key.agent(), source);
        let f = |value: Json| Field {
            rank,
            source,
            value,
        };
        let AgentRecord {
            name,
            time_unix_nano,
            trace_id,
            span_id,
            attributes,
            body,
            ..
        } = obs;
        let mut changed = self.sources.insert(source);
        changed |= self.offer("name".into(), f(Json::String(name)));
        if time_unix_nano != 0 {
            changed |= self.offer("time".into(), f(Json::from(time_unix_nano)));
        }
        if !trace_id.is_empty() {
            changed |= self.offer("trace_id".into(), f(Json::String(trace_id)));
        }
        if !span_id.is_empty() {
            changed |= self.offer("span_id".into(), f(Json::String(span_id)));
        }
        if !body.is_null() {
            changed |= self.offer("body".into(), f(body));
        }
        for (k, v) in attributes {
            let mut name = String::with_capacity(k.len() + 2);
            name.push_str("a:");
            name.push_str(&k);
            changed |= self.offer(name, f(v));
        }
        Added::New { changed }
    }

    /// Joins another merged event of the same logical event; true when anything changed.
    pub fn join(&mut self, other: &Merged) -> bool {
        let mut changed = false;
        for d in &other.digests {
            changed |= self.digests.insert(d.clone());
        }
        for s in &other.sources {
            changed |= self.sources.insert(*s);
        }
        for (k, f) in &other.fields {
            changed |= self.offer(k.clone(), f.clone());
        }
        changed
    }

    /// The same event under another key (alias resolution).
    pub fn rekey(mut self, key: EventKey) -> Self {
        self.key = key;
        self
    }

    /// 0 for the first observation, +1 for each further distinct one.
    pub fn revision(&self) -> u64 {
        (self.digests.len() as u64).saturating_sub(1)
    }

    /// The best-ranked source (ties: the greater name).
    pub fn best_source(&self) -> Option<Source> {
        let agent = self.key.agent();
        let prec_rank = |s: &Source| {
            self.fields
                .values()
                .filter(|f| f.source == *s)
                .map(|f| f.rank)
                .max()
                .unwrap_or(0)
        };
        let _ = agent;
        self.sources.iter().copied().max_by(|a, b| {
            prec_rank(a)
                .cmp(&prec_rank(b))
                .then(a.as_str().cmp(b.as_str()))
        })
    }

    /// A field's value.
    pub fn value(&self, field: &str) -> Option<&Json> {
        self.fields.get(field).map(|f| &f.value)
    }

    /// The merged event as a canonical record: sources, revision, and provenance for every
    /// field that did not come from the record's `agent.source`.
    pub fn to_record(&self) -> AgentRecord {
        let source = self.best_source();
        let name = self
            .value("name")
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| self.key.kind().event_name())
            .to_string();
        let text = |f: &str| {
            self.value(f)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let mut r = AgentRecord::observation(
            self.key.clone(),
            name,
            source.unwrap_or(Source::Otlp),
            self.value("time").and_then(|v| v.as_u64()).unwrap_or(0),
        );
        r.trace_id = text("trace_id");
        r.span_id = text("span_id");
        r.body = self.value("body").cloned().unwrap_or(Json::Null);
        // Built from sorted runs (the fields are in name order), not inserted one by one.
        r.attributes = self
            .fields
            .iter()
            .filter_map(|(k, f)| Some((k.strip_prefix("a:")?.to_string(), f.value.clone())))
            .collect();
        r.provenance = self
            .fields
            .iter()
            .filter(|(_, f)| Some(f.source) != source)
            .map(|(k, f)| (k.clone(), f.source))
            .collect();
        r.sources = self.sources.iter().copied().collect();
        r.revision = Some(self.revision());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::*;
    use proptest::prelude::*;

    fn obs(source: Source, time: u64, attrs: &[(&str, Json)], body: Json) -> AgentRecord {
        let key = EventKey::new(
            Agent::Codex,
            "t",
            Some("u"),
            Some("call_1"),
            Kind::ToolResult,
        )
        .unwrap();
        let mut r = AgentRecord::observation(key, "agent.tool.result", source, time);
        for (k, v) in attrs {
            r.set(k, v.clone());
        }
        r.body = body;
        r
    }

    fn pool() -> Vec<AgentRecord> {
        vec![
            obs(
                Source::Otlp,
                30,
                &[("gen_ai.tool.name", "exec_command".into())],
                "hi".into(),
            ),
            obs(
                Source::Hook,
                20,
                &[
                    ("gen_ai.tool.name", "Bash".into()),
                    ("agent.tool.exit_code", 0.into()),
                ],
                "hi\n".into(),
            ),
            obs(
                Source::Rollout,
                25,
                &[("agent.duration_ms", 91.into())],
                Json::Null,
            ),
            obs(
                Source::Otlp,
                10,
                &[("agent.tool.success", true.into())],
                "hi".into(),
            ),
            obs(
                Source::AppServer,
                0,
                &[("agent.tool.exit_code", 0.into())],
                "hi\n".into(),
            ),
        ]
    }

    #[test]
    fn higher_precedence_wins_per_field_and_lower_fills_gaps() {
        let p = Precedence::default();
        let mut m = Merged::new(pool()[0].key.clone());
        for o in pool() {
            m.add(&o, &p);
        }
        let r = m.to_record();
        assert_eq!(r.source, Some(Source::AppServer));
        assert_eq!(r.body, Json::from("hi\n"));
        assert_eq!(
            r.get("gen_ai.tool.name"),
            Some(&Json::from("Bash")),
            "hook beats otlp"
        );
        assert_eq!(
            r.get("agent.tool.success"),
            Some(&Json::from(true)),
            "only otlp had it"
        );
        assert_eq!(r.time_unix_nano, 25, "rollout's time: app_server had none");
        assert_eq!(r.revision, Some(4));
        assert_eq!(
            r.provenance.get("a:agent.tool.success"),
            Some(&Source::Otlp)
        );
        assert_eq!(r.sources.len(), 4);
    }

    #[test]
    fn digests_are_32_lowercase_hex_digits() {
        for s in ["", "{}", "x"] {
            let h = xxhash_rust::xxh3::xxh3_128(s.as_bytes());
            assert_eq!(digest(s), format!("{h:032x}"));
        }
    }

    #[test]
    fn duplicates_are_recognised() {
        let p = Precedence::default();
        let o = &pool()[0];
        let mut m = Merged::from_observation(o, &p);
        assert_eq!(m.add(o, &p), Added::Duplicate);
        assert_eq!(m.revision(), 0);
    }

    #[test]
    fn precedence_is_configurable() {
        let p = Precedence {
            codex: vec![Source::Otlp, Source::Hook],
            claude_code: vec![],
        };
        let mut m = Merged::new(pool()[0].key.clone());
        m.add(&pool()[0], &p);
        m.add(&pool()[1], &p);
        assert_eq!(
            m.to_record().get("gen_ai.tool.name"),
            Some(&Json::from("exec_command"))
        );
    }

    proptest! {
        #[test]
        fn any_permutation_and_duplication_gives_identical_bytes(
            order in Just((0..5usize).collect::<Vec<_>>()).prop_shuffle(),
            dups in proptest::collection::vec(0..5usize, 0..6),
            split in 0..6usize,
        ) {
            let p = Precedence::default();
            let pool = pool();
            let mut reference = Merged::new(pool[0].key.clone());
            for o in &pool {
                reference.add(o, &p);
            }
            let mut seq: Vec<usize> = order.clone();
            seq.extend(dups);
            // Merge in two halves, then join them, as two dedupe instances or a restart would.
            let cut = split.min(seq.len());
            let (mut a, mut b) = (Merged::new(pool[0].key.clone()), Merged::new(pool[0].key.clone()));
            for i in &seq[..cut] { a.add(&pool[*i], &p); }
            for i in &seq[cut..] { b.add(&pool[*i], &p); }
            a.join(&b);
            prop_assert_eq!(
                serde_json::to_string(&a).unwrap(),
                serde_json::to_string(&reference).unwrap()
            );
            prop_assert_eq!(
                serde_json::to_string(&a.to_record()).unwrap(),
                serde_json::to_string(&reference.to_record()).unwrap()
            );
        }
    }
    fn small_json() -> impl Strategy<Value = Json> {
        // Few distinct values, so equal pairs are frequent.
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            (-2i64..3).prop_map(Json::from),
            (0u64..3).prop_map(Json::from),
            prop_oneof![Just(0.0), Just(-0.0), Just(1.0), Just(2.5)].prop_map(Json::from),
            "[ab\"\n]{0,2}".prop_map(Json::String),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Json::Array),
                proptest::collection::btree_map("[ab]", inner, 0..3)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The shortcut of `order` never calls two texts equal that are not, and the texts it
        /// compares otherwise are serde_json's.
        #[test]
        fn same_text_implies_equal_texts(a in small_json(), b in small_json()) {
            let (ta, tb) = (serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
            if same_text(&a, &b) {
                prop_assert_eq!(&ta, &tb);
            }
            prop_assert_eq!(json_text(&a), ta.clone());
            prop_assert!(same_text(&a, &a.clone()) || ta.contains('.'));
        }
    }
}
