//! The admin API (`/admin/*`) and the operations behind it, shared with the
//! CLI: teams, users, virtual keys, spend reports.
//!
//! Only the master key or keys with the `admin` role may call it. An admin key
//! cannot mint a key with more rights than its own: the new key's models,
//! limits, budget, team and expiry are bounded by the creator's.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use modelgate_core::ErrorClass;
use modelgate_policy::budget::Period;
use modelgate_policy::keys;
use modelgate_store::governance::{Entity, GroupBy, KeyRow, LimitFields, Member};
use modelgate_store::{Store, StoreError, now_ms};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::governance::Governance;
use crate::state::{AppState, Caller};

fn double<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// Limit and budget fields shared by keys, teams and users. In a PATCH, an
/// absent field is unchanged and `null` clears it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitInput {
    #[serde(default, deserialize_with = "double")]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double")]
    pub rpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    pub tpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    pub max_parallel: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    pub max_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "double")]
    pub budget_period: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub soft_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "double")]
    pub metadata: Option<Option<Value>>,
}

/// `POST /admin/keys` and `PATCH /admin/keys/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    #[serde(default, deserialize_with = "double")]
    pub name: Option<Option<String>>,
    /// Team id or name.
    #[serde(default, deserialize_with = "double")]
    pub team: Option<Option<String>>,
    /// User id or name.
    #[serde(default, deserialize_with = "double")]
    pub user: Option<Option<String>>,
    /// `user` (default) or `admin`.
    pub role: Option<String>,
    /// RFC 3339 time or Unix seconds.
    #[serde(default, deserialize_with = "double")]
    pub expires_at: Option<Option<Value>>,
    pub enabled: Option<bool>,
    #[serde(flatten)]
    pub limits: LimitInput,
}

/// `POST /admin/teams|users` and their PATCH.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    pub name: Option<String>,
    /// Users only: team id or name.
    #[serde(default, deserialize_with = "double")]
    pub team: Option<Option<String>>,
    #[serde(flatten)]
    pub limits: LimitInput,
}

/// Limits as the API shows them (USD, not nano-dollars).
#[derive(Debug, Serialize)]
pub struct LimitView {
    pub models: Option<Vec<String>>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub max_parallel: Option<i64>,
    pub max_budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub soft_budget_usd: Option<String>,
    pub metadata: Option<Value>,
}

fn usd(n: Option<i64>) -> Option<String> {
    n.map(|n| modelgate_core::Nanos(n).to_usd_string())
}

fn limit_view(
    models: &Option<Vec<String>>,
    l: &LimitFields,
    metadata: &Option<Value>,
) -> LimitView {
    LimitView {
        models: models.clone(),
        rpm: l.rpm,
        tpm: l.tpm,
        max_parallel: l.max_parallel,
        max_budget_usd: usd(l.max_budget_nanos),
        budget_period: l.budget_period.clone(),
        soft_budget_usd: usd(l.soft_budget_nanos),
        metadata: metadata.clone(),
    }
}

/// A key as the API shows it (never the hash; the plaintext only on create/rotate).
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: Option<String>,
    pub key_prefix: String,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub role: String,
    #[serde(flatten)]
    pub limits: LimitView,
    pub expires_at_ms: Option<i64>,
    pub enabled: bool,
    pub revoked: bool,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The plaintext key: present once, in the create and rotate responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyView {
    /// The view of a stored key (with its plaintext on create/rotate).
    pub fn of(k: &KeyRow, plaintext: Option<String>) -> KeyView {
        KeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            key_prefix: k.prefix.clone(),
            team_id: k.team_id.clone(),
            user_id: k.user_id.clone(),
            role: k.role.clone(),
            limits: limit_view(&k.models, &k.limits, &k.metadata),
            expires_at_ms: k.expires_at_ms,
            enabled: k.enabled,
            revoked: k.revoked_at_ms.is_some(),
            created_by: k.created_by.clone(),
            created_at_ms: k.created_at_ms,
            updated_at_ms: k.updated_at_ms,
            key: plaintext,
        }
    }
}

/// A team or user as the API shows it.
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(flatten)]
    pub limits: LimitView,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl MemberView {
    /// The view of a stored team or user.
    pub fn of(m: &Member) -> MemberView {
        MemberView {
            id: m.id.clone(),
            name: m.name.clone(),
            team_id: m.team_id.clone(),
            limits: limit_view(&m.models, &m.limits, &m.metadata),
            created_at_ms: m.created_at_ms,
            updated_at_ms: m.updated_at_ms,
        }
    }
}

pub(crate) fn store_err(e: StoreError) -> ApiError {
    let text = e.to_string();
    let StoreError::Db(db) = &e;
    let unique = matches!(db, sqlx::Error::Database(d) if d.is_unique_violation());
    if unique || text.contains("UNIQUE") {
        let mut err =
            ApiError::new(ErrorClass::Conflict, "The name is already taken.").with_code("conflict");
        err.param = Some("name".into());
        return err;
    }
    tracing::error!(error = %text, "admin store error");
    ApiError::new(
        ErrorClass::Internal,
        "The gateway could not update its store.",
    )
}

fn nanos(param: &str, usd: f64) -> Result<i64, ApiError> {
    if !usd.is_finite() || !(0.0..=1e9).contains(&usd) {
        return Err(ApiError::bad_param(
            param,
            format!("'{param}' must be between 0 and 1000000000 USD."),
        ));
    }
    Ok((usd * 1e9).round() as i64)
}

fn positive(param: &str, v: u64) -> Result<i64, ApiError> {
    if v == 0 {
        return Err(ApiError::bad_param(
            param,
            format!("'{param}' must be at least 1."),
        ));
    }
    i64::try_from(v).map_err(|_| ApiError::bad_param(param, format!("'{param}' is too large.")))
}

/// Applies a limit input onto stored fields.
fn apply_limits(
    input: &LimitInput,
    models: &mut Option<Vec<String>>,
    l: &mut LimitFields,
    metadata: &mut Option<Value>,
) -> Result<(), ApiError> {
    if let Some(m) = &input.models {
        if let Some(list) = m
            && list.iter().any(|p| p.trim().is_empty())
        {
            return Err(ApiError::bad_param(
                "models",
                "'models' entries must not be empty.",
            ));
        }
        *models = m.clone();
    }
    for (param, field, slot) in [
        ("rpm", &input.rpm, &mut l.rpm),
        ("tpm", &input.tpm, &mut l.tpm),
        ("max_parallel", &input.max_parallel, &mut l.max_parallel),
    ] {
        if let Some(v) = field {
            *slot = v.map(|v| positive(param, v)).transpose()?;
        }
    }
    if let Some(v) = &input.max_budget_usd {
        l.max_budget_nanos = v.map(|u| nanos("max_budget_usd", u)).transpose()?;
    }
    if let Some(v) = &input.soft_budget_usd {
        l.soft_budget_nanos = v.map(|u| nanos("soft_budget_usd", u)).transpose()?;
    }
    if let Some(p) = &input.budget_period {
        if Period::parse(p.as_deref()).is_none() {
            return Err(ApiError::bad_param(
                "budget_period",
                "'budget_period' must be daily, weekly, monthly or total.",
            ));
        }
        l.budget_period = p.clone();
    }
    if let Some(m) = &input.metadata {
        if m.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(ApiError::bad_param(
                "metadata",
                "'metadata' must be an object.",
            ));
        }
        *metadata = m.clone();
    }
    Ok(())
}

/// Parses `expires_at`: RFC 3339 (`2026-12-31T23:59:59Z`) or Unix seconds.
pub fn parse_time(v: &Value, param: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_param(
            param,
            format!("'{param}' must be an RFC 3339 time or Unix seconds."),
        )
    };
    match v {
        Value::Number(n) => n.as_i64().and_then(|s| s.checked_mul(1000)).ok_or_else(bad),
        Value::String(s) => parse_rfc3339(s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Unix seconds, or an RFC 3339 timestamp, in milliseconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1000);
    }
    modelgate_core::time::parse_rfc3339_ms(s).map(|ms| ms - ms.rem_euclid(1000))
}

/// Who is creating or changing a key, for the "no more rights than its own" rule.
fn bound_by_creator(creator: &Caller, k: &mut KeyRow) -> Result<(), ApiError> {
    let Some(p) = creator.principal() else {
        return Ok(()); // the master key may grant anything
    };
    let mine = &p.key;
    let deny = |what: &str| {
        ApiError::new(
            ErrorClass::Forbidden,
            format!("A key cannot grant more than it has: {what}."),
        )
        .with_code("insufficient_permissions")
    };
    if mine.team_id.is_some() {
        match &k.team_id {
            None => k.team_id = mine.team_id.clone(),
            Some(t) if Some(t) != mine.team_id.as_ref() => return Err(deny("another team")),
            _ => {}
        }
    }
    if mine.user_id.is_some() {
        match &k.user_id {
            None => k.user_id = mine.user_id.clone(),
            Some(u) if Some(u) != mine.user_id.as_ref() => return Err(deny("another user")),
            _ => {}
        }
    }
    if mine.role != "admin" && k.role == "admin" {
        return Err(deny("the admin role"));
    }
    if let Some(allowed) = &mine.models {
        match &k.models {
            None => k.models = Some(allowed.clone()),
            Some(req) => {
                if let Some(m) = req.iter().find(|m| {
                    !allowed
                        .iter()
                        .any(|a| modelgate_policy::model_matches(a, m))
                }) {
                    return Err(deny(&format!("model `{m}`")));
                }
            }
        }
    }
    let caps = [
        ("rpm", mine.limits.rpm, &mut k.limits.rpm),
        ("tpm", mine.limits.tpm, &mut k.limits.tpm),
        (
            "max_parallel",
            mine.limits.max_parallel,
            &mut k.limits.max_parallel,
        ),
        (
            "max_budget_usd",
            mine.limits.max_budget_nanos,
            &mut k.limits.max_budget_nanos,
        ),
    ];
    for (what, cap, slot) in caps {
        if let Some(cap) = cap {
            match slot {
                None => *slot = Some(cap),
                Some(v) if *v > cap => return Err(deny(&format!("{what} above its own"))),
                _ => {}
            }
        }
    }
    if mine.limits.max_budget_nanos.is_some() {
        // A shorter period renews sooner: a child's budget period may not be
        // shorter than its creator's (daily < weekly < monthly < total).
        let rank = |p: Option<&str>| match Period::parse(p) {
            Some(Period::Daily) => 0,
            Some(Period::Weekly) => 1,
            Some(Period::Monthly) => 2,
            _ => 3,
        };
        match &k.limits.budget_period {
            None if mine.limits.budget_period.is_some() => {
                k.limits.budget_period = mine.limits.budget_period.clone();
            }
            p if rank(p.as_deref()) < rank(mine.limits.budget_period.as_deref()) => {
                return Err(deny("a budget that renews more often"));
            }
            _ => {}
        }
    }
    if let Some(exp) = mine.expires_at_ms {
        match k.expires_at_ms {
            None => k.expires_at_ms = Some(exp),
            Some(e) if e > exp => return Err(deny("a later expiry")),
            _ => {}
        }
    }
    Ok(())
}

/// A non-master caller may only act on keys within its own rights (so it
/// cannot rotate, revoke or edit a wider key and take it over).
fn within_caller(caller: &Caller, target: &KeyRow) -> Result<(), ApiError> {
    if caller.principal().is_none() {
        return Ok(());
    }
    let mut bounded = target.clone();
    bound_by_creator(caller, &mut bounded)?;
    if bounded != *target {
        return Err(ApiError::new(
            ErrorClass::Forbidden,
            "This key has rights the calling key does not have; only the master key (or a key with at least those rights) may change it.",
        )
        .with_code("insufficient_permissions"));
    }
    Ok(())
}

async fn member_id(
    store: &Store,
    entity: Entity,
    id_or_name: &str,
    param: &str,
) -> Result<String, ApiError> {
    match store
        .get_member(entity, id_or_name)
        .await
        .map_err(store_err)?
    {
        Some(m) => Ok(m.id),
        None => Err(ApiError::bad_param(
            param,
            format!("No {param} named {id_or_name:?}."),
        )),
    }
}

/// Creates a key; returns it with its plaintext (shown only now).
pub async fn create_key(
    store: &Store,
    gov: &Governance,
    creator: &Caller,
    input: KeyInput,
) -> Result<KeyView, ApiError> {
    let (id, plaintext) = keys::generate().map_err(|_| {
        ApiError::new(
            ErrorClass::Internal,
            "No randomness available to make a key.",
        )
    })?;
    let now = now_ms();
    let mut k = KeyRow {
        hash: gov.hash(&plaintext),
        prefix: keys::display_prefix(&id),
        id,
        name: input.name.clone().flatten(),
        team_id: None,
        user_id: None,
        role: "user".into(),
        models: None,
        limits: LimitFields::default(),
        expires_at_ms: None,
        metadata: None,
        enabled: input.enabled.unwrap_or(true),
        revoked_at_ms: None,
        created_by: Some(creator.label().to_owned()),
        created_at_ms: now,
        updated_at_ms: now,
    };
    edit_key(store, &mut k, &input).await?;
    bound_by_creator(creator, &mut k)?;
    store.create_key(&k).await.map_err(store_err)?;
    audit::<KeyView, KeyView>(
        store,
        creator.label(),
        "key.create",
        &k.id,
        None,
        Some(&KeyView::of(&k, None)),
    )
    .await;
    Ok(KeyView::of(&k, Some(plaintext)))
}

async fn edit_key(store: &Store, k: &mut KeyRow, input: &KeyInput) -> Result<(), ApiError> {
    if let Some(n) = &input.name {
        k.name = n.clone();
    }
    if let Some(t) = &input.team {
        k.team_id = match t {
            Some(t) => Some(member_id(store, Entity::Team, t, "team").await?),
            None => None,
        };
    }
    if let Some(u) = &input.user {
        k.user_id = match u {
            Some(u) => Some(member_id(store, Entity::User, u, "user").await?),
            None => None,
        };
    }
    if let Some(r) = &input.role {
        if r != "user" && r != "admin" {
            return Err(ApiError::bad_param("role", "'role' must be user or admin."));
        }
        k.role = r.clone();
    }
    if let Some(e) = &input.expires_at {
        k.expires_at_ms = e
            .as_ref()
            .map(|v| parse_time(v, "expires_at"))
            .transpose()?;
    }
    if let Some(en) = input.enabled {
        k.enabled = en;
    }
    apply_limits(&input.limits, &mut k.models, &mut k.limits, &mut k.metadata)
}

/// Appends an admin action to the audit chain (a failure is logged, not fatal:
/// the action has happened).
pub async fn audit<B: Serialize, A: Serialize>(
    store: &Store,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<&B>,
    after: Option<&A>,
) {
    let before = before.and_then(|b| serde_json::to_string(b).ok());
    let after = after.and_then(|a| serde_json::to_string(a).ok());
    if let Err(e) = store.audit(actor, action, target, before, after).await {
        tracing::error!(error = %e, action, target, "could not append to the audit trail");
    }
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorClass::Forbidden,
            "The admin API needs the master key or a key with the admin role.",
        )
        .with_code("insufficient_permissions"))
    }
}

pub(crate) async fn admin(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let caller = state.authenticate(headers).await?;
    if matches!(caller, Caller::Anonymous) && state.config().server.master_key.is_none() {
        // Keyless loopback mode: the local operator is the admin.
        return Ok(Caller::Master);
    }
    admin_only(&caller)?;
    Ok(caller)
}

/// [`admin`] for an endpoint that reads the request log or its rollups:
/// the writer batches, so it is flushed first and the read sees every
/// request settled so far.
pub(crate) async fn admin_reading_log(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let caller = admin(state, headers).await?;
    state.inner.log.flush().await;
    Ok(caller)
}

fn json_body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    crate::edge::parse_json(raw)
}

/// A query string that does not parse is a 400 in the OpenAI envelope (not
/// axum's plain-text rejection).
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| {
        ApiError::new(
            ErrorClass::BadRequest,
            format!("Invalid query string: {}", e.body_text()),
        )
        .with_code("invalid_query")
    })
}

/// The JSON answer with `status`, or the error in the OpenAI envelope.
pub(crate) fn respond<T: Serialize>(status: StatusCode, r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => (status, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(ErrorClass::NotFound, format!("No {what} {id:?}.")).with_code("not_found")
}

/// `POST /admin/keys`.
pub async fn post_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let r = async {
        let caller = admin(&state, &headers).await?;
        let input: KeyInput = json_body(&body)?;
        create_key(&state.inner.store, &state.inner.governance, &caller, input).await
    }
    .await;
    respond(StatusCode::CREATED, r)
}

/// `GET /admin/keys`.
pub async fn list_keys(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let r = async {
        admin(&state, &headers).await?;
        let keys = state.inner.store.list_keys().await.map_err(store_err)?;
        Ok::<_, ApiError>(serde_json::json!({
            "object": "list",
            "data": keys.iter().map(|k| KeyView::of(k, None)).collect::<Vec<_>>()
        }))
    }
    .await;
    respond(StatusCode::OK, r)
}

async fn load_key(state: &AppState, id: &str) -> Result<KeyRow, ApiError> {
    state
        .inner
        .store
        .get_key(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| not_found("key", id))
}

/// `GET /admin/keys/{id}`.
pub async fn get_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        admin(&state, &headers).await?;
        Ok::<_, ApiError>(KeyView::of(&load_key(&state, &id).await?, None))
    }
    .await;
    respond(StatusCode::OK, r)
}

/// `PATCH /admin/keys/{id}`.
pub async fn patch_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let r = async {
        let caller = admin(&state, &headers).await?;
        let input: KeyInput = json_body(&body)?;
        let mut k = load_key(&state, &id).await?;
        within_caller(&caller, &k)?;
        let before = KeyView::of(&k, None);
        edit_key(&state.inner.store, &mut k, &input).await?;
        bound_by_creator(&caller, &mut k)?;
        state.inner.store.update_key(&k).await.map_err(store_err)?;
        state.inner.governance.invalidate(Some(&id));
        let after = KeyView::of(&load_key(&state, &id).await?, None);
        audit(
            &state.inner.store,
            caller.label(),
            "key.update",
            &id,
            Some(&before),
            Some(&after),
        )
        .await;
        Ok::<_, ApiError>(after)
    }
    .await;
    respond(StatusCode::OK, r)
}

/// Revokes a key (shared with the CLI).
pub async fn revoke_key(
    store: &Store,
    gov: &Governance,
    actor: &str,
    id: &str,
) -> Result<KeyView, ApiError> {
    let mut k = store
        .get_key(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| not_found("key", id))?;
    if k.revoked_at_ms.is_none() {
        let before = KeyView::of(&k, None);
        k.revoked_at_ms = Some(now_ms());
        k.enabled = false;
        store.update_key(&k).await.map_err(store_err)?;
        audit(
            store,
            actor,
            "key.revoke",
            id,
            Some(&before),
            Some(&KeyView::of(&k, None)),
        )
        .await;
    }
    gov.invalidate(Some(id));
    Ok(KeyView::of(&k, None))
}

/// `DELETE /admin/keys/{id}`: revokes the key.
pub async fn delete_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        let caller = admin(&state, &headers).await?;
        within_caller(&caller, &load_key(&state, &id).await?)?;
        revoke_key(
            &state.inner.store,
            &state.inner.governance,
            caller.label(),
            &id,
        )
        .await
    }
    .await;
    respond(StatusCode::OK, r)
}

/// `POST /admin/keys/{id}/rotate`: a new secret for the same key id; the old one stops working.
pub async fn rotate_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        let caller = admin(&state, &headers).await?;
        let mut k = load_key(&state, &id).await?;
        within_caller(&caller, &k)?;
        if k.revoked_at_ms.is_some() {
            return Err(
                ApiError::new(ErrorClass::Conflict, "A revoked key cannot be rotated.")
                    .with_code("key_revoked"),
            );
        }
        let secret = keys::random_token(40).map_err(|_| {
            ApiError::new(
                ErrorClass::Internal,
                "No randomness available to make a key.",
            )
        })?;
        let plaintext = format!("{}{}-{secret}", keys::PREFIX, k.id);
        k.hash = state.inner.governance.hash(&plaintext);
        state.inner.store.update_key(&k).await.map_err(store_err)?;
        state.inner.governance.invalidate(Some(&id));
        audit::<KeyView, KeyView>(
            &state.inner.store,
            caller.label(),
            "key.rotate",
            &id,
            None,
            None,
        )
        .await;
        Ok(KeyView::of(&k, Some(plaintext)))
    }
    .await;
    respond(StatusCode::OK, r)
}

/// Creates a team or user (shared with the CLI).
pub async fn create_member(
    store: &Store,
    actor: &str,
    entity: Entity,
    input: MemberInput,
) -> Result<MemberView, ApiError> {
    let name = input
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::bad_param("name", "'name' is required."))?;
    let now = now_ms();
    let id = keys::random_token(12)
        .map_err(|_| ApiError::new(ErrorClass::Internal, "No randomness available."))?;
    let mut m = Member {
        id,
        name,
        team_id: None,
        models: None,
        limits: LimitFields::default(),
        metadata: None,
        created_at_ms: now,
        updated_at_ms: now,
    };
    edit_member(store, entity, &mut m, &input).await?;
    store.create_member(entity, &m).await.map_err(store_err)?;
    let view = MemberView::of(&m);
    let action = if entity == Entity::Team {
        "team.create"
    } else {
        "user.create"
    };
    audit::<MemberView, MemberView>(store, actor, action, &m.id, None, Some(&view)).await;
    Ok(view)
}

async fn edit_member(
    store: &Store,
    entity: Entity,
    m: &mut Member,
    input: &MemberInput,
) -> Result<(), ApiError> {
    if let Some(n) = &input.name {
        if n.trim().is_empty() {
            return Err(ApiError::bad_param("name", "'name' must not be empty."));
        }
        m.name = n.clone();
    }
    if let Some(t) = &input.team {
        if entity == Entity::Team {
            return Err(ApiError::bad_param("team", "A team has no team."));
        }
        m.team_id = match t {
            Some(t) => Some(member_id(store, Entity::Team, t, "team").await?),
            None => None,
        };
    }
    apply_limits(&input.limits, &mut m.models, &mut m.limits, &mut m.metadata)
}

/// Teams and users carry the limits that bound keys: only the master key changes them.
fn master_only(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Master => Ok(()),
        _ => Err(ApiError::new(
            ErrorClass::Forbidden,
            "Only the master key may create or change teams and users.",
        )
        .with_code("insufficient_permissions")),
    }
}

fn entity_of(kind: &str) -> Option<(Entity, &'static str)> {
    match kind {
        "teams" => Some((Entity::Team, "team")),
        "users" => Some((Entity::User, "user")),
        _ => None,
    }
}

/// `POST /admin/{teams|users}`.
pub async fn post_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let r = async {
        let caller = admin(&state, &headers).await?;
        master_only(&caller)?;
        let (entity, _) = entity_of(&kind).ok_or_else(|| not_found("route", &kind))?;
        let input: MemberInput = json_body(&body)?;
        create_member(&state.inner.store, caller.label(), entity, input).await
    }
    .await;
    respond(StatusCode::CREATED, r)
}

/// `GET /admin/{teams|users}`.
pub async fn list_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(kind): Path<String>,
) -> Response {
    let r = async {
        admin(&state, &headers).await?;
        let (entity, _) = entity_of(&kind).ok_or_else(|| not_found("route", &kind))?;
        let all = state
            .inner
            .store
            .list_members(entity)
            .await
            .map_err(store_err)?;
        Ok::<_, ApiError>(serde_json::json!({
            "object": "list",
            "data": all.iter().map(MemberView::of).collect::<Vec<_>>()
        }))
    }
    .await;
    respond(StatusCode::OK, r)
}

/// `GET|PATCH|DELETE /admin/{teams|users}/{id}`.
pub async fn member(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let r = async {
        let caller = admin(&state, &headers).await?;
        let (entity, what) = entity_of(&kind).ok_or_else(|| not_found("route", &kind))?;
        if method != axum::http::Method::GET {
            master_only(&caller)?;
        }
        let store = &state.inner.store;
        let mut m = store
            .get_member(entity, &id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| not_found(what, &id))?;
        match method {
            axum::http::Method::GET => {}
            axum::http::Method::PATCH => {
                let input: MemberInput = json_body(&body)?;
                edit_member(store, entity, &mut m, &input).await?;
                store.update_member(entity, &m).await.map_err(store_err)?;
                state.inner.governance.invalidate(None);
            }
            axum::http::Method::DELETE => {
                store
                    .delete_member(entity, &m.id)
                    .await
                    .map_err(store_err)?;
                state.inner.governance.invalidate(None);
            }
            _ => return Err(ApiError::bad_param("method", "Use GET, PATCH or DELETE.")),
        }
        Ok::<_, ApiError>(MemberView::of(&m))
    }
    .await;
    respond(StatusCode::OK, r)
}

/// Query of `GET /admin/spend`.
#[derive(Debug, Deserialize)]
pub struct SpendQuery {
    pub group_by: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `POST /admin/config/reload`: re-reads the configuration file and swaps it
/// in atomically (or changes nothing and says why). Audited.
pub async fn reload_config(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let r = async {
        let caller = admin(&state, &headers).await?;
        state.reload(caller.label()).await
    }
    .await;
    respond(StatusCode::OK, r)
}

/// `GET /admin/spend?group_by=key|team|user|model|provider|day&from=&to=`.
pub async fn spend(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SpendQuery>, QueryRejection>,
) -> Response {
    let r = async {
        admin_reading_log(&state, &headers).await?;
        let q = query(q)?;
        let group = GroupBy::parse(q.group_by.as_deref().unwrap_or("key")).ok_or_else(|| {
            ApiError::bad_param("group_by", "'group_by' must be key, team, user, model, provider or day.")
        })?;
        let time = |v: &Option<String>, param: &str, default: i64| match v {
            None => Ok(default),
            Some(s) => parse_time(&Value::String(s.clone()), param),
        };
        let from = time(&q.from, "from", 0)?;
        let to = time(&q.to, "to", now_ms() + 1)?;
        let rows = state.inner.store.spend_report(group, from, to).await.map_err(store_err)?;
        let data: Vec<Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "group": r.group,
                    "requests": r.requests,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "tokens": r.input_tokens + r.output_tokens,
                    "spend_usd": modelgate_core::Nanos(r.cost_nanos).to_usd_string(),
                })
            })
            .collect();
        Ok::<_, ApiError>(serde_json::json!({"object": "list", "group_by": q.group_by.as_deref().unwrap_or("key"), "from_ms": from, "to_ms": to, "data": data}))
    }
    .await;
    respond(StatusCode::OK, r)
}

/// Query of `GET /admin/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub key: Option<String>,
    pub team: Option<String>,
    pub user: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: Option<i64>,
    pub min_latency_ms: Option<i64>,
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

fn record_view(r: &modelgate_store::RequestRecord) -> Value {
    serde_json::json!({
        "id": r.id,
        "started_at_ms": r.started_at_ms,
        "caller": r.caller,
        "key_id": r.key_id,
        "team_id": r.team_id,
        "user_id": r.user_id,
        "end_user": r.end_user,
        "route": r.route,
        "model": r.requested_model,
        "provider": r.provider,
        "deployment": r.deployment,
        "upstream_model": r.upstream_model,
        "stream": r.stream,
        "status": r.status,
        "error_class": r.error_class,
        "error_message": r.error_message,
        "latency_ms": r.latency_us as f64 / 1000.0,
        "ttft_ms": r.ttft_us.map(|t| t as f64 / 1000.0),
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cached_tokens": r.cached_tokens,
        "cache_write_tokens": r.cache_write_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "usage_estimated": r.usage_estimated,
        "cost_usd": r.cost_nanos.map(|c| modelgate_core::Nanos(c).to_usd_string()),
        "cost_breakdown": r.cost_breakdown.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()),
        "attempts": r.attempts.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()),
        "truncated": r.truncated,
        "request_body": r.request_body,
        "response_body": r.response_body,
        "metadata": r.metadata.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
    })
}

/// `GET /admin/requests`: the request log, filtered, newest first, paginated.
pub async fn requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RequestsQuery>, QueryRejection>,
) -> Response {
    let r = async {
        admin_reading_log(&state, &headers).await?;
        let q = query(q)?;
        let time = |v: &Option<String>, param: &str, default: i64| match v {
            None => Ok(default),
            Some(s) => parse_time(&Value::String(s.clone()), param),
        };
        let limit = q.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::bad_param(
                "limit",
                "'limit' must be between 1 and 1000.",
            ));
        }
        let filter = modelgate_store::RequestFilter {
            from_ms: time(&q.from, "from", 0)?,
            to_ms: time(&q.to, "to", now_ms() + 1)?,
            key_id: q.key.clone(),
            team_id: q.team.clone(),
            user_id: q.user.clone(),
            model: q.model.clone(),
            provider: q.provider.clone(),
            status: q.status,
            min_latency_us: q.min_latency_ms.map(|ms| ms.saturating_mul(1000)),
            before_seq: q.cursor,
            limit,
        };
        let rows = state
            .inner
            .store
            .search_requests(&filter)
            .await
            .map_err(store_err)?;
        let next = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|r| r.seq))
            .flatten();
        Ok::<_, ApiError>(serde_json::json!({
            "object": "list",
            "data": rows.iter().map(record_view).collect::<Vec<_>>(),
            "next_cursor": next,
        }))
    }
    .await;
    respond(StatusCode::OK, r)
}

/// `GET /admin/requests/{id}`: one request with every attempt.
pub async fn request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        admin_reading_log(&state, &headers).await?;
        let rec = state
            .inner
            .store
            .get_request(&id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| not_found("request", &id))?;
        Ok::<_, ApiError>(record_view(&rec))
    }
    .await;
    respond(StatusCode::OK, r)
}

/// Query of `GET /admin/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records after this sequence number.
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// `GET /admin/audit`: the audit trail, oldest first, with a chain check.
pub async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let r = async {
        admin(&state, &headers).await?;
        let q = query(q)?;
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        let rows = state
            .inner
            .store
            .audit_records(q.after.unwrap_or(0), limit)
            .await
            .map_err(store_err)?;
        Ok::<_, ApiError>(serde_json::json!({"object": "list", "data": rows}))
    }
    .await;
    respond(StatusCode::OK, r)
}

/// `GET /admin/openapi.json`.
pub async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("admin_openapi.json"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-22T17:34:00Z"),
            Some(1_795_368_840_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T18:34:00.123+01:00"),
            Some(1_795_368_840_000)
        );
        assert_eq!(parse_rfc3339("1795368840"), Some(1_795_368_840_000));
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
