//! Flips across the instances that share a state topic (`[state] store =
//! "kafka"`): started on any instance, carried out on every live one.
//!
//! The steps, all through the topic (one partition: every instance reads
//! the records in one order):
//! 1. the initiator proposes (`run/ID/propose`, naming the instances whose
//!    leases are live);
//! 2. every instance that reads the proposal fences the topic's Produce
//!    and waits for those under way; each participant confirms
//!    (`run/ID/fenced/INSTANCE`), or calls the flip off
//!    (`run/ID/abort/INSTANCE`);
//! 3. once all have confirmed, the initiator checks the old log (still,
//!    no open transaction), takes the stitch points and records the flip
//!    (`flip/TOPIC/ID`, the commit);
//! 4. the first decision in the log stands: on a commit every instance
//!    switches its routes, then lets the held Produce go (and confirms,
//!    `run/ID/switched/INSTANCE`); on an abort it just lets it go.
//!
//! An instance that does not confirm its fence in time makes the initiator
//! abort; an initiator that goes silent makes the participants abort once
//! the decision is overdue. An instance whose own lease may have expired
//! refuses Produce (retriable) until it has renewed it: the others no
//! longer wait for it, so it must not write where a flip may have moved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::gates::FenceGuard;
use crate::domain::ids::ClusterIdx;
use crate::ops::flip::{self, plan, FlipAsked, FlipError, FlipReport};
use crate::ops::group_move::{self, GroupMoveError, GroupMoveReport};
use crate::ops::state_topic::records::{
    self, Abort, Change, Decision, Event, Proposal, Run, StepDone, Subject,
};
use crate::ops::state_topic::StateTopic;
use crate::ops::steps::{self, InstanceSteps, MoveError, StepClock, StepTiming};
use crate::runtime::proxy::Proxy;

/// How long the initiator waits for every participant to confirm its
/// fence: their own wait for Produce under way, and a margin.
const FENCE_CONFIRM_WAIT: Duration = Duration::from_secs(15);
/// How long a participant holds a fence without a decision before it
/// calls the flip off (the initiator went silent).
const DECISION_WAIT: Duration = Duration::from_secs(45);
/// How long the initiator waits for every participant to confirm its
/// switch; the flip is done either way, a missing one is reported.
const SWITCH_CONFIRM_WAIT: Duration = Duration::from_secs(10);
/// Pause after a failed read of the state topic.
const RETRY: Duration = Duration::from_millis(200);
/// How long an initiator stops at the step `SWITCHYARD_FLEET_HOLD` names.
const HOLD: Duration = Duration::from_secs(10);

/// A fault-injection point for tests: with `SWITCHYARD_FLEET_HOLD=STEP`
/// in its environment an initiator stops for [`HOLD`] in that step of each
/// flip (`fence`: proposed, confirmations awaited; `check`: checked, not
/// recorded; `record`: recorded, decision not read; `switch`: committed,
/// switches not confirmed), saying so in its log, so that a test can kill
/// it right there.
async fn hold(step: &str) {
    if std::env::var("SWITCHYARD_FLEET_HOLD").is_ok_and(|s| s == step) {
        tracing::warn!(step, "fleet flip held (SWITCHYARD_FLEET_HOLD)");
        tokio::time::sleep(HOLD).await;
    }
}

pub struct Fleet {
    topic: Arc<StateTopic>,
    /// Fences held for flips not yet decided, by run id (taken when the
    /// proposal is read, before any later record is acted on).
    fences: Mutex<HashMap<String, FenceGuard>>,
    /// When each undecided proposal was read here, by run id.
    proposed_at: Mutex<HashMap<String, Instant>>,
    /// Bumped whenever records have been taken.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Fleet {
    pub fn new(topic: Arc<StateTopic>) -> Arc<Fleet> {
        Arc::new(Fleet {
            topic,
            fences: Mutex::new(HashMap::new()),
            proposed_at: Mutex::new(HashMap::new()),
            changed: tokio::sync::watch::channel(0).0,
        })
    }

    /// Follows the state topic for as long as the proxy runs, acting on
    /// what the other instances write. Flips proposed and not decided when
    /// this instance started are fenced here too.
    pub async fn follow(self: Arc<Self>, proxy: Arc<Proxy>) {
        for proposal in self.topic.undecided() {
            if proposal.initiator == self.topic.instance() {
                // Started by this instance before it restarted: it cannot
                // go on, so it ends here.
                let reason = "its initiator restarted before deciding".to_owned();
                self.call_off(&proposal.id, reason).await;
            }
            self.fence(&proxy, proposal, false);
        }
        let mut was_ok = true;
        loop {
            match self.topic.poll().await {
                Ok(events) => {
                    if !was_ok {
                        tracing::info!("the state topic is readable again");
                        was_ok = true;
                    }
                    for event in events {
                        self.act(&proxy, event).await;
                    }
                    self.topic.caught_up();
                    self.changed.send_modify(|n| *n += 1);
                    self.topic.prune_claims();
                }
                Err(e) => {
                    if was_ok {
                        tracing::warn!(error = %e, "cannot read the state topic; retrying");
                        was_ok = false;
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    async fn act(self: &Arc<Self>, proxy: &Arc<Proxy>, event: Event) {
        match event {
            Event::Proposed(proposal) => self.fence(proxy, proposal, true),
            Event::Decided(id, Decision::Commit(change)) => {
                // Switch first, then let the held requests go: they go to
                // the new route.
                let (taken, what, name) = match &change {
                    Change::Flip(flip) => (proxy.take_flip(flip).await, "flip", &flip.topic),
                    Change::GroupMove(moved) => (
                        proxy.take_group_move(moved).await,
                        "group move",
                        &moved.group,
                    ),
                };
                if let Err(e) = taken {
                    tracing::error!(subject = name, error = %e, "cannot switch to a {what} recorded in the state topic");
                }
                let ms = self.release(&id);
                tracing::info!(subject = name, run = id, "fleet {what} switched");
                if self.participates(&id) {
                    let step = StepDone {
                        id: id.clone(),
                        instance: self.topic.instance().to_owned(),
                        ms,
                    };
                    let key = records::switched_key(&id, self.topic.instance());
                    if let Err(e) = self.topic.write(&key, &step).await {
                        tracing::warn!(run = id, error = %e, "cannot confirm the switch");
                    }
                }
            }
            Event::Decided(id, Decision::Abort(abort)) => {
                let what = self
                    .topic
                    .run(&id)
                    .map_or("run", |r| kind(&r.proposal.subject));
                self.release(&id);
                tracing::info!(
                    run = id,
                    by = abort.instance,
                    reason = abort.reason,
                    "fleet {what} aborted"
                );
            }
            Event::Progress(_) | Event::Lease(_) | Event::None => {}
        }
    }

    fn participates(&self, id: &str) -> bool {
        self.topic.run(id).is_some_and(|r| {
            r.proposal
                .participants
                .iter()
                .any(|p| p == self.topic.instance())
        })
    }

    /// Lets the fence of run `id` go; how long ago its proposal was read
    /// here, in milliseconds.
    fn release(&self, id: &str) -> f64 {
        lock(&self.fences).remove(id);
        lock(&self.proposed_at)
            .remove(id)
            .map_or(0.0, |at| at.elapsed().as_secs_f64() * 1000.0)
    }

    /// Fences the subject of `proposal` here (a topic's Produce, a
    /// group's requests), then (`confirm`, when this instance is a
    /// participant) says so in the topic, or calls the run off when the
    /// fence fails. Calls it off too when no decision comes in time.
    fn fence(self: &Arc<Self>, proxy: &Arc<Proxy>, proposal: Proposal, confirm: bool) {
        let me = self.topic.instance().to_owned();
        let confirm = confirm && proposal.participants.contains(&me);
        lock(&self.proposed_at).insert(proposal.id.clone(), Instant::now());
        let what = kind(&proposal.subject);
        tracing::info!(
            run = proposal.id,
            subject = proposal.subject.name(),
            initiator = proposal.initiator,
            "fencing for a fleet {what}"
        );
        let (gates, within, held) = match &proposal.subject {
            Subject::Topic(_) => (proxy.gates(), plan::INFLIGHT_WAIT, "produce requests"),
            Subject::Group(_) => (
                proxy.group_gates(),
                group_move::INFLIGHT_WAIT,
                "offset commits",
            ),
        };
        let (gates, name) = (gates.clone(), proposal.subject.name().to_owned());
        // Fenced now, before anything else this instance reads is acted
        // on (it may count itself caught up right after); what is under
        // way drains below.
        let id = proposal.id.clone();
        let fenced = if !proposal.moves_produce {
            Ok(()) // a fetch-only flip: nothing to fence
        } else if let Some(guard) = gates.fence(&name) {
            lock(&self.fences).insert(id.clone(), guard);
            Ok(())
        } else {
            Err(format!("a {what} of '{name}' holds its fence already"))
        };
        let fleet = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let drained = match fenced {
                Ok(()) if proposal.moves_produce => {
                    match tokio::time::timeout(within, gates.drained(&name)).await {
                        Ok(()) => Ok(()),
                        Err(_) => Err(format!(
                            "{} {held} still unanswered after {within:?}",
                            gates.inflight(&name),
                        )),
                    }
                }
                other => other,
            };
            let outcome = match drained {
                Ok(()) => {
                    let step = StepDone {
                        id: id.clone(),
                        instance: me.clone(),
                        ms: started.elapsed().as_secs_f64() * 1000.0,
                    };
                    (records::fenced_key(&id, &me), serde_json::to_value(step))
                }
                Err(e) => {
                    let abort = Abort {
                        id: id.clone(),
                        instance: me.clone(),
                        reason: format!("instance '{me}' could not fence: {e}"),
                    };
                    (records::abort_key(&id, &me), serde_json::to_value(abort))
                }
            };
            if confirm {
                if let (key, Ok(value)) = outcome {
                    if let Err(e) = fleet.topic.write(&key, &value).await {
                        tracing::warn!(run = id, error = %e, "cannot confirm the fence");
                    }
                }
            }
            // The initiator may go silent: do not hold the fence forever.
            let deadline = Instant::now() + DECISION_WAIT;
            loop {
                tokio::time::sleep(fleet.topic.lease_interval()).await;
                if fleet.topic.run(&id).is_none_or(|r| r.decision.is_some()) {
                    break;
                }
                let reason = if !fleet.topic.is_live(&proposal.initiator) {
                    format!(
                        "the lease of its initiator '{}' expired",
                        proposal.initiator
                    )
                } else if Instant::now() > deadline {
                    format!("no decision within {DECISION_WAIT:?} of the proposal")
                } else {
                    continue;
                };
                fleet.call_off(&id, reason).await;
                break;
            }
        });
    }

    /// Writes this instance's abort of run `id`.
    async fn call_off(&self, id: &str, reason: String) {
        let me = self.topic.instance();
        let abort = Abort {
            id: id.to_owned(),
            instance: me.to_owned(),
            reason,
        };
        if let Err(e) = self.topic.write(&records::abort_key(id, me), &abort).await {
            tracing::warn!(run = id, error = %e, "cannot write the abort of a fleet flip");
        }
    }

    /// Run `id` once `done` says so, or `None` after `within`.
    async fn wait(&self, id: &str, within: Duration, done: impl Fn(&Run) -> bool) -> Option<Run> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(run) = self.topic.run(id).filter(|r| done(r)) {
                return Some(run);
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Run `id` once it is decided (an abort is written here when no
    /// decision comes in time).
    async fn decision(&self, id: &str) -> Decision {
        loop {
            if let Some(run) = self.wait(id, DECISION_WAIT, |r| r.decision.is_some()).await {
                if let Some(decision) = run.decision {
                    return decision;
                }
            }
            self.call_off(id, "no decision in time".to_owned()).await;
        }
    }

    /// Calls run `id` off with `error`, and says how it ended.
    async fn abort<E: MoveError + std::fmt::Display>(&self, id: &str, name: &str, error: E) -> E {
        self.call_off(id, error.to_string()).await;
        match self.decision(id).await {
            Decision::Abort(a) if a.instance == self.topic.instance() => error,
            Decision::Abort(a) => aborted(name, a),
            // Committed before the abort was read: the run stands.
            Decision::Commit(_) => error,
        }
    }

    /// Runs one flip across every live instance, or aborts it on all of
    /// them leaving routes as they were.
    pub async fn flip(
        &self,
        proxy: &Arc<Proxy>,
        asked: &FlipAsked,
    ) -> Result<FlipReport, FlipError> {
        let (topic, mirrored) = (asked.topic.as_str(), asked.mirrored);
        let (_running, plan, mut report) = flip::begin(proxy, topic, asked.to, asked.side)?;
        if !report.changed {
            return Ok(report);
        }
        let mut clock = StepClock::start("topic", topic, Instant::now());
        flip::prepare(proxy, &plan).await?;
        clock.mark(&mut report.steps, "prepare", Instant::now());
        let subject = Subject::Topic(topic.to_owned());
        let checked = plan.moves_produce().then_some("check");
        let mut stitch = Vec::new();
        let work = async || {
            // The old log is still and has no open transaction: take the
            // stitch points.
            if plan.moves_produce() {
                stitch = flip::check(proxy, &plan, mirrored).await?;
            }
            Ok(Change::Flip(plan.record(stitch.clone(), steps::now_ms())))
        };
        let steps = std::mem::take(&mut report.steps);
        let done = self
            .run(subject, plan.moves_produce(), (clock, steps), checked, work)
            .await?;
        report.steps = done.steps;
        report.instances = done.instances;
        report.run = Some(done.id);
        report.stitch = stitch;
        Ok(report)
    }

    /// Moves one consumer group across every live instance (each holds
    /// the group's requests while its offsets are copied), or aborts it on
    /// all of them leaving routes as they were.
    pub async fn move_group(
        &self,
        proxy: &Arc<Proxy>,
        group: &str,
        to: ClusterIdx,
    ) -> Result<GroupMoveReport, GroupMoveError> {
        let (_running, from, mut report) = group_move::begin(proxy, group, to)?;
        if !report.changed {
            return Ok(report);
        }
        let mut clock = StepClock::start("group", group, Instant::now());
        group_move::prepare(proxy, group, to).await?;
        clock.mark(&mut report.steps, "prepare", Instant::now());
        let steps = std::mem::take(&mut report.steps);
        let mut offsets = 0;
        let work = async || {
            offsets = group_move::copy(proxy, group, from, to).await?;
            let mut record = report.record();
            record.offsets = offsets;
            Ok(Change::GroupMove(record))
        };
        let subject = Subject::Group(group.to_owned());
        let done = self
            .run(subject, true, (clock, steps), Some("copy"), work)
            .await?;
        report.steps = done.steps;
        report.instances = done.instances;
        report.run = Some(done.id);
        report.offsets = offsets;
        Ok(report)
    }

    /// The steps every fleet run shares: propose, every participant
    /// fences (`fences`: false for a fetch-only flip) and confirms, `work`
    /// (timed as step `work_step`) gives the change, which is recorded
    /// (the commit, with the steps so far), then every instance switches.
    /// `clock` and its steps so far come from the caller's own steps.
    /// Returns every step's timing, each instance's part and the run's id;
    /// any failure before the commit aborts the run on every instance.
    async fn run<E: MoveError + std::fmt::Display>(
        &self,
        subject: Subject,
        fences: bool,
        (mut clock, mut steps): (StepClock, Vec<StepTiming>),
        work_step: Option<&str>,
        work: impl AsyncFnOnce() -> Result<Change, E>,
    ) -> Result<Done, E> {
        let name = subject.name().to_owned();
        let name = name.as_str();

        // 1. propose; 2. every participant fences and confirms.
        let me = self.topic.instance().to_owned();
        let id = format!("{me}-{}", steps::now_ms());
        let participants = self.topic.live_instances();
        let proposal = Proposal {
            id: id.clone(),
            subject,
            initiator: me.clone(),
            participants: participants.clone(),
            moves_produce: fences,
            at_ms: steps::now_ms(),
        };
        self.topic
            .write(&records::propose_key(&id), &proposal)
            .await
            .map_err(|e| E::not_recorded(name, e))?;
        hold("fence").await;
        let all_fenced =
            |r: &Run| r.decision.is_some() || participants.iter().all(|p| r.fenced.contains_key(p));
        let fenced = self.wait(&id, FENCE_CONFIRM_WAIT, all_fenced).await;
        match fenced.as_ref().and_then(|r| r.decision.clone()) {
            Some(Decision::Abort(a)) => return Err(aborted(name, a)),
            Some(Decision::Commit(_)) => {}
            None if fenced.is_some() => {}
            None => {
                let run = self.topic.run(&id);
                let missing: Vec<&str> = participants
                    .iter()
                    .filter(|p| !run.as_ref().is_some_and(|r| r.fenced.contains_key(*p)))
                    .map(String::as_str)
                    .collect();
                let reason = format!(
                    "instance(s) {} did not confirm the fence within {FENCE_CONFIRM_WAIT:?}",
                    missing.join(", ")
                );
                let error = E::fleet_aborted(name, me.clone(), reason);
                return Err(self.abort(&id, name, error).await);
            }
        }
        clock.mark(&mut steps, "fence", Instant::now());

        // 3. the run's own work (a flip's check, a move's copy), then its
        // record: the commit.
        let change = match work().await {
            Ok(change) => change,
            Err(e) => return Err(self.abort(&id, name, e).await),
        };
        if let Some(step) = work_step {
            clock.mark(&mut steps, step, Instant::now());
        }
        hold("check").await;
        let (key, change) = change.with_steps(&steps).committing(&id);
        if let Err(e) = self.topic.write(&key, &change).await {
            return Err(self.abort(&id, name, E::not_recorded(name, e)).await);
        }
        hold("record").await;
        match self.decision(&id).await {
            Decision::Commit(_) => {}
            Decision::Abort(a) => return Err(aborted(name, a)),
        }
        clock.mark(&mut steps, "record", Instant::now());
        hold("switch").await;

        // 4. every instance switches, then lets its held requests go.
        let all_switched = |r: &Run| participants.iter().all(|p| r.switched.contains_key(p));
        let run = self
            .wait(&id, SWITCH_CONFIRM_WAIT, all_switched)
            .await
            .or_else(|| self.topic.run(&id));
        clock.mark(&mut steps, "switch", Instant::now());
        let instances = participants
            .iter()
            .map(|p| InstanceSteps {
                instance: p.clone(),
                fence_ms: run.as_ref().and_then(|r| r.fenced.get(p).copied()),
                switch_ms: run.as_ref().and_then(|r| r.switched.get(p).copied()),
            })
            .collect();
        tracing::info!(
            subject = name,
            run = id,
            instances = participants.len(),
            "fleet run done"
        );
        Ok(Done {
            id,
            steps,
            instances,
        })
    }
}

/// A fleet run done: its id, its steps' timings, each instance's part.
struct Done {
    id: String,
    steps: Vec<StepTiming>,
    instances: Vec<InstanceSteps>,
}

/// What a fleet run of `subject` is called in the log.
fn kind(subject: &Subject) -> &'static str {
    match subject {
        Subject::Topic(_) => "flip",
        Subject::Group(_) => "group move",
    }
}

fn aborted<E: MoveError>(name: &str, abort: Abort) -> E {
    E::fleet_aborted(name, abort.instance, abort.reason)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
