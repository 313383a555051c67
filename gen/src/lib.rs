//! A deterministic synthetic organisation: people and service accounts, departments with
//! groups, applications with a Zipf-like spread of entitlements, and years of joiners,
//! movers, leavers (about 15% a year, some recorded late), rehires, temporary grants,
//! credential rotation and duplicate deliveries.
//!
//! The same seed gives the same events, in the same order, on every machine. Events come
//! out in recording order (the order a log would store them), through a callback, so that
//! 10M of them need no memory beyond the organisation's current state.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use tenure_engine::event::*;
use tenure_engine::{Entitlement, NewEvent, Position, Timestamp};

/// What to generate.
#[derive(Clone, Debug)]
pub struct OrgConfig {
    /// Identities over the whole history (people and services, rehires counted once).
    pub identities: usize,
    pub years: u32,
    pub seed: u64,
    /// The first day of the history.
    pub start: Timestamp,
}

impl OrgConfig {
    pub fn new(identities: usize, years: u32, seed: u64) -> Self {
        // 2020-01-01T00:00:00Z
        OrgConfig { identities, years, seed, start: Timestamp::from_micros(1_577_836_800_000_000) }
    }
}

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A Zipf-like pick in `0..n`: low indexes are much more likely.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) - 1.0).floor().clamp(0.0, (n - 1) as f64) as usize
    }
}

const DAY: i64 = 86_400_000_000;
const DEPARTMENTS: [&str; 12] = [
    "engineering",
    "finance",
    "sales",
    "marketing",
    "support",
    "legal",
    "hr",
    "it",
    "security",
    "data",
    "ops",
    "design",
];
const PERMISSIONS: [&str; 3] = ["read", "write", "admin"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Left,
}

struct Person {
    name: String,
    service: bool,
    dept: usize,
    status: Status,
    owner: Option<usize>,
    /// Live direct grants: entitlement → expiry (µs).
    grants: Vec<(usize, i64)>,
    rotates: bool,
    next_rotation: i64,
    /// Services this person owns now.
    services: Vec<usize>,
}

/// Something recorded on a later day.
enum Delayed {
    Event(Box<NewEvent>),
    Rejoin(usize),
}

/// Generates the organisation, calling `emit` for each event in recording order.
/// Returns how many events were emitted.
pub fn generate(config: &OrgConfig, mut emit: impl FnMut(NewEvent)) -> u64 {
    let mut g = Gen {
        rng: Rng(config.seed ^ 0x7E9E_5EED),
        start: config.start.as_micros(),
        people: Vec::new(),
        active_humans: Vec::new(),
        delayed: BTreeMap::new(),
        recent: Vec::new(),
        seq: 0,
        emitted: 0,
        apps: (config.identities / 100).max(20),
    };
    g.run(config, &mut emit);
    g.emitted
}

struct Gen {
    rng: Rng,
    start: i64,
    people: Vec<Person>,
    /// Indexes of active humans (for picking owners, movers, grants).
    active_humans: Vec<usize>,
    /// Late-recorded events: emission day → events.
    delayed: BTreeMap<i64, Vec<Delayed>>,
    /// A window of recent events, some of which are delivered again.
    recent: Vec<NewEvent>,
    seq: u64,
    emitted: u64,
    apps: usize,
}

impl Gen {
    fn ent(&self, i: usize) -> Entitlement {
        Entitlement::new(&format!("app-{:04}", i / 3), PERMISSIONS[i % 3])
    }

    fn group_name(dept: usize) -> String {
        format!("dept-{}", DEPARTMENTS[dept])
    }

    fn event(&mut self, source: &str, eff: i64, data: EventData) -> NewEvent {
        self.seq += 1;
        let mut e = NewEvent::new(Timestamp::from_micros(eff), data).with_source(source, &format!("{}", self.seq));
        e.actor = Some(format!("{source}-sync"));
        e
    }

    fn send(&mut self, e: NewEvent, emit: &mut impl FnMut(NewEvent)) {
        // About 1% of deliveries come again later: the same key, stored once.
        if self.rng.chance(0.01) {
            if self.recent.len() >= 64 {
                let i = self.rng.below(self.recent.len());
                self.recent.swap_remove(i);
            }
            self.recent.push(e.clone());
        }
        self.emitted += 1;
        emit(e);
    }

    fn join(&mut self, day_start: i64, service: bool, emit: &mut impl FnMut(NewEvent)) {
        let idx = self.people.len();
        let eff = day_start + self.rng.below(12) as i64 * 3_600_000_000 + 8 * 3_600_000_000;
        let dept = self.rng.zipf(DEPARTMENTS.len());
        let owner = if service && !self.active_humans.is_empty() {
            Some(self.active_humans[self.rng.below(self.active_humans.len())])
        } else {
            None
        };
        let service = service && owner.is_some();
        let name = if service { format!("svc-{idx:07}") } else { format!("u{idx:07}") };
        let mut attributes = BTreeMap::new();
        attributes.insert("department".to_string(), DEPARTMENTS[dept].to_string());
        if !service {
            attributes.insert("display_name".to_string(), format!("Person {idx}"));
            attributes
                .insert("title".to_string(), ["engineer", "analyst", "manager", "associate"][idx % 4].to_string());
        }
        let data = EventData::IdentityJoined(Joined {
            identity: name.as_str().into(),
            kind: if service { IdentityKind::Service } else { IdentityKind::Human },
            attributes,
            owner: owner.map(|o| self.people[o].name.as_str().into()),
        });
        let source = if service { "it" } else { "hr" };
        let e = self.event(source, eff, data);
        self.send(e, emit);
        let rotates = self.rng.chance(0.8);
        self.people.push(Person {
            name: name.clone(),
            service,
            dept,
            status: Status::Active,
            owner,
            grants: Vec::new(),
            rotates,
            next_rotation: eff + 90 * DAY,
            services: Vec::new(),
        });
        if let Some(o) = owner {
            self.people[o].services.push(idx);
        }
        if service {
            let data = EventData::CredentialIssued(Credential {
                identity: name.as_str().into(),
                credential: format!("{name}-key").as_str().into(),
                expires_at: Some(Timestamp::from_micros(eff + 365 * DAY)),
            });
            let e = self.event("it", eff + 60_000_000, data);
            self.send(e, emit);
        } else {
            self.active_humans.push(idx);
        }
        let data = EventData::GroupMemberAdded(Membership {
            group: Self::group_name(dept).as_str().into(),
            identity: name.as_str().into(),
        });
        let e = self.event("okta", eff + 120_000_000, data);
        self.send(e, emit);
    }

    fn run(&mut self, config: &OrgConfig, emit: &mut impl FnMut(NewEvent)) {
        let days = config.years.max(1) as i64 * 365;
        // Groups and their grants exist from the first day.
        for (dept, dept_name) in DEPARTMENTS.iter().enumerate() {
            let group = Self::group_name(dept);
            let data = EventData::GroupCreated(GroupLifecycle {
                group: group.as_str().into(),
                display_name: Some(format!("Department: {dept_name}")),
                external_id: None,
            });
            let e = self.event("okta", self.start, data);
            self.send(e, emit);
            for _ in 0..6 {
                let ent = self.rng.zipf(self.apps * 3);
                let data = EventData::GroupAccessGranted(GroupAccess {
                    group: group.as_str().into(),
                    entitlement: self.ent(ent),
                });
                let e = self.event("okta", self.start, data);
                self.send(e, emit);
            }
        }
        let leave_rate = 0.15;
        let initial = ((config.identities as f64) / (1.0 + leave_rate * config.years as f64)).ceil() as usize;
        let initial = initial.min(config.identities).max(1);
        for day in 0..days {
            let day_start = self.start + day * DAY;
            // Initial population over the first 30 days.
            if day < 30 {
                let target = initial * (day as usize + 1) / 30;
                while self.people.len() < target {
                    let service = self.rng.chance(0.1);
                    self.join(day_start, service, emit);
                }
            }
            // Late-recorded events due today.
            if let Some(late) = self.delayed.remove(&day) {
                for d in late {
                    self.delayed_now(d, day_start, emit);
                }
            }
            self.leavers(day_start, day, leave_rate, emit);
            // Joiners replace leavers while the identity budget lasts.
            let active = self.active_humans.len();
            let hires = if day >= 30 && self.people.len() < config.identities {
                let expected = active as f64 * leave_rate / 365.0 * 1.15;
                expected.floor() as usize + usize::from(self.rng.chance(expected.fract()))
            } else {
                0
            };
            for _ in 0..hires {
                if self.people.len() >= config.identities {
                    break;
                }
                let service = self.rng.chance(0.1);
                self.join(day_start, service, emit);
            }
            self.movers_and_grants(day_start, emit);
            self.credentials(day_start, emit);
            // Re-deliver a recent event now and then.
            if !self.recent.is_empty() && self.rng.chance(0.5) {
                let i = self.rng.below(self.recent.len());
                let e = self.recent.swap_remove(i);
                self.emitted += 1;
                emit(e);
            }
        }
        // Whatever is still delayed is recorded at the end.
        let end = self.start + days * DAY;
        let late: Vec<Delayed> = std::mem::take(&mut self.delayed).into_values().flatten().collect();
        for d in late {
            self.delayed_now(d, end, emit);
        }
    }

    fn delayed_now(&mut self, d: Delayed, day_start: i64, emit: &mut impl FnMut(NewEvent)) {
        match d {
            Delayed::Event(e) => self.send(*e, emit),
            Delayed::Rejoin(idx) => {
                if self.people[idx].status != Status::Left {
                    return;
                }
                self.people[idx].status = Status::Active;
                self.active_humans.push(idx);
                let name = self.people[idx].name.clone();
                let eff = day_start + 9 * 3_600_000_000;
                let data = EventData::IdentityRejoined(Rejoined { identity: name.as_str().into(), attributes: None });
                let e = self.event("hr", eff, data);
                self.send(e, emit);
                let group = Self::group_name(self.people[idx].dept);
                let add = EventData::GroupMemberAdded(Membership {
                    group: group.as_str().into(),
                    identity: name.as_str().into(),
                });
                let e = self.event("okta", eff + 3_600_000_000, add);
                self.send(e, emit);
            }
        }
    }

    fn leavers(&mut self, day_start: i64, day: i64, rate: f64, emit: &mut impl FnMut(NewEvent)) {
        let p = rate / 365.0;
        let mut i = 0;
        while i < self.active_humans.len() {
            if !self.rng.chance(p) {
                i += 1;
                continue;
            }
            let idx = self.active_humans.swap_remove(i);
            self.people[idx].status = Status::Left;
            self.people[idx].grants.clear();
            let eff = day_start + 17 * 3_600_000_000;
            let name = self.people[idx].name.clone();
            let data = EventData::IdentityLeft(StatusChange {
                identity: name.as_str().into(),
                reason: Some(["resigned", "contract ended", "retired"][self.rng.below(3)].to_string()),
            });
            let e = self.event("hr", eff, data);
            if self.rng.chance(0.05) {
                // Recorded late: HR enters it days or weeks after the fact.
                let lag = 3 + self.rng.below(40) as i64;
                self.delayed.entry(day + lag).or_default().push(Delayed::Event(Box::new(e)));
            } else {
                self.send(e, emit);
            }
            // Their services: usually handed to someone else, sometimes orphaned.
            let owned = std::mem::take(&mut self.people[idx].services);
            for s in owned {
                if self.rng.chance(0.6) && !self.active_humans.is_empty() {
                    let new_owner = self.active_humans[self.rng.below(self.active_humans.len())];
                    self.people[s].owner = Some(new_owner);
                    self.people[new_owner].services.push(s);
                    let data = EventData::IdentityOwnerChanged(OwnerChanged {
                        identity: self.people[s].name.as_str().into(),
                        owner: self.people[new_owner].name.as_str().into(),
                    });
                    let e = self.event("it", eff + DAY, data);
                    self.send(e, emit);
                }
            }
            // Some come back.
            if self.rng.chance(0.03) {
                let back = day + 30 + self.rng.below(300) as i64;
                self.delayed.entry(back).or_default().push(Delayed::Rejoin(idx));
            }
        }
    }

    fn movers_and_grants(&mut self, day_start: i64, emit: &mut impl FnMut(NewEvent)) {
        let n = self.active_humans.len();
        if n == 0 {
            return;
        }
        // About 10% of people move department in a year.
        let moves =
            (n as f64 * 0.10 / 365.0) as usize + usize::from(self.rng.chance((n as f64 * 0.10 / 365.0).fract()));
        for _ in 0..moves {
            let idx = self.active_humans[self.rng.below(n)];
            let old = self.people[idx].dept;
            let new = self.rng.zipf(DEPARTMENTS.len());
            if new == old {
                continue;
            }
            self.people[idx].dept = new;
            let name = self.people[idx].name.clone();
            let eff = day_start + 10 * 3_600_000_000;
            let moved = EventData::IdentityMoved(Moved {
                identity: name.as_str().into(),
                attributes: [("department".to_string(), DEPARTMENTS[new].to_string())].into(),
            });
            let e = self.event("hr", eff, moved);
            self.send(e, emit);
            let removed = EventData::GroupMemberRemoved(Membership {
                group: Self::group_name(old).as_str().into(),
                identity: name.as_str().into(),
            });
            let e = self.event("okta", eff + 60_000_000, removed);
            self.send(e, emit);
            let added = EventData::GroupMemberAdded(Membership {
                group: Self::group_name(new).as_str().into(),
                identity: name.as_str().into(),
            });
            let e = self.event("okta", eff + 120_000_000, added);
            self.send(e, emit);
        }
        // Temporary direct grants: about two a person a year, most with an expiry.
        let grants = (n as f64 * 2.0 / 365.0) as usize + usize::from(self.rng.chance((n as f64 * 2.0 / 365.0).fract()));
        for _ in 0..grants {
            let idx = self.active_humans[self.rng.below(n)];
            let ent = self.rng.zipf(self.apps * 3);
            let eff = day_start + 11 * 3_600_000_000 + self.rng.below(3600) as i64 * 1_000_000;
            let expires = if self.rng.chance(0.8) { eff + (7 + self.rng.below(83)) as i64 * DAY } else { i64::MAX };
            let name = self.people[idx].name.clone();
            let data = EventData::AccessGranted(Granted {
                identity: name.as_str().into(),
                entitlement: self.ent(ent),
                expires_at: (expires != i64::MAX).then(|| Timestamp::from_micros(expires)),
                justification: Some(format!("ticket SEC-{}", self.seq % 100_000)),
                approver: Some(format!("u{:07}", self.rng.below(self.people.len()))),
            });
            let e = self.event("it", eff, data);
            self.send(e, emit);
            self.people[idx].grants.push((ent, expires));
            // Some are revoked early, a little later in the same day's feed.
            if self.rng.chance(0.25) {
                let (ent, _) = self.people[idx].grants.pop().unwrap_or((ent, expires));
                let data = EventData::AccessRevoked(Revoked {
                    identity: name.as_str().into(),
                    entitlement: self.ent(ent),
                    reason: Some("no longer needed".to_string()),
                });
                let e = self.event("it", eff + 3 * 3_600_000_000, data);
                self.send(e, emit);
            }
        }
    }

    fn credentials(&mut self, day_start: i64, emit: &mut impl FnMut(NewEvent)) {
        // Services rotate their key every 90 days, those that rotate at all; look at a
        // slice of the population a day so the cost stays linear.
        let n = self.people.len();
        if n == 0 {
            return;
        }
        for _ in 0..(n / 90).max(1) {
            let s = self.rng.below(n);
            let p = &self.people[s];
            if !p.service || p.status != Status::Active || !p.rotates || p.next_rotation > day_start {
                continue;
            }
            let name = p.name.clone();
            self.people[s].next_rotation = day_start + 90 * DAY;
            let data = EventData::CredentialRotated(Credential {
                identity: name.as_str().into(),
                credential: format!("{name}-key").as_str().into(),
                expires_at: Some(Timestamp::from_micros(day_start + 365 * DAY)),
            });
            let e = self.event("it", day_start + 2 * 3_600_000_000, data);
            self.send(e, emit);
        }
    }
}

/// A retraction, for demos: withdraw position `p` with a reason.
pub fn retraction(p: u64, eff: Timestamp, reason: &str) -> NewEvent {
    NewEvent::new(eff, EventData::EventRetracted(Retracted { position: Position(p), reason: reason.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_events() {
        let cfg = OrgConfig::new(300, 2, 42);
        let mut a = vec![];
        let mut b = vec![];
        generate(&cfg, |e| a.push(e.to_json()));
        generate(&cfg, |e| b.push(e.to_json()));
        assert_eq!(a, b);
        assert!(a.len() > 1000, "{} events", a.len());
        let mut c = vec![];
        generate(&OrgConfig::new(300, 2, 43), |e| c.push(e.to_json()));
        assert_ne!(a, c);
    }
}
