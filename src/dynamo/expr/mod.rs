//! DynamoDB's expression language: condition, filter and key-condition expressions, update
//! expressions and projection expressions, parsed with `winnow` (a parser-combinator crate)
//! into a syntax tree, then resolved against the request's `ExpressionAttributeNames` and
//! `ExpressionAttributeValues`, and evaluated over items.
//!
//! - `parse.rs`: the grammar; a syntax error names its position, as DynamoDB's does.
//! - `resolve`: placeholders (`#name`, `:value`) replaced; undefined ones refused, unused
//!   ones refused once every expression of the request has been read.
//! - `eval.rs`: paths into items, comparisons, functions, conditions.
//! - `update.rs`: `SET` / `REMOVE` / `ADD` / `DELETE`.
//! - `number.rs`: DynamoDB numbers compared and added exactly (38 digits).

mod eval;
mod number;
mod parse;
mod update;

use std::collections::{BTreeMap, BTreeSet};

use super::attr::AttributeValue;
use super::error::DynamoError;

pub use eval::{eval_condition, last_eval_work_bytes, project};
pub use update::apply_update;

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathElem {
    /// An attribute or map member name (a `#placeholder` until resolved).
    Name(String),
    Index(usize),
}

/// `a.b[2].c`: starts with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub Vec<PathElem>);

impl Path {
    /// The top-level attribute the path starts at.
    pub fn top(&self) -> &str {
        match self.0.first() {
            Some(PathElem::Name(n)) => n,
            _ => "",
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            match e {
                PathElem::Name(n) if i == 0 => write!(f, "{n}")?,
                PathElem::Name(n) => write!(f, ".{n}")?,
                PathElem::Index(k) => write!(f, "[{k}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Path(Path),
    /// `:name`, until resolved into [`Operand::Const`].
    ValueRef(String),
    Const(AttributeValue),
    Size(Path),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Cmp(Operand, CmpOp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

/// The right-hand side of a `SET` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    Value(UpdateOperand),
    Plus(UpdateOperand, UpdateOperand),
    Minus(UpdateOperand, UpdateOperand),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOperand {
    Operand(Operand),
    IfNotExists(Path, Box<UpdateOperand>),
    ListAppend(Box<UpdateOperand>, Box<UpdateOperand>),
}

/// An update expression's clauses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub set: Vec<(Path, SetValue)>,
    pub remove: Vec<Path>,
    pub add: Vec<(Path, Operand)>,
    pub delete: Vec<(Path, Operand)>,
}

/// Which expression a message is about, named as DynamoDB names the parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Condition,
    Filter,
    KeyCondition,
    Update,
    Projection,
}

impl Kind {
    pub fn param(self) -> &'static str {
        match self {
            Kind::Condition => "ConditionExpression",
            Kind::Filter => "FilterExpression",
            Kind::KeyCondition => "KeyConditionExpression",
            Kind::Update => "UpdateExpression",
            Kind::Projection => "ProjectionExpression",
        }
    }
}

/// Operands of one `IN` (DynamoDB's limit).
pub const MAX_IN_OPERANDS: usize = 100;

/// Longest expression accepted (DynamoDB's limit is 4 KB).
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// Bytes of names and values one request's expressions may copy in from their placeholders
/// (each use is a copy): a 4 KB expression naming a 1 MB value hundreds of times is refused
/// instead of taking gigabytes.
pub const MAX_SUBSTITUTED_BYTES: usize = 4 << 20;

/// Roughly the bytes a copy of `v` takes in memory (each value and set element a few words
/// besides its text).
fn footprint(v: &AttributeValue) -> usize {
    const NODE: usize = 32;
    NODE + match v {
        AttributeValue::S(s) | AttributeValue::N(s) | AttributeValue::B(s) => s.len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 0,
        AttributeValue::L(l) => l.iter().map(footprint).sum(),
        AttributeValue::M(m) => m.iter().map(|(k, v)| NODE + k.len() + footprint(v)).sum(),
        AttributeValue::SS(x) | AttributeValue::NS(x) | AttributeValue::BS(x) => {
            x.iter().map(|e| NODE + e.len()).sum()
        }
    }
}

/// A request's placeholders and which of them its expressions used.
pub struct Placeholders<'a> {
    names: Option<&'a BTreeMap<String, String>>,
    values: Option<&'a BTreeMap<String, AttributeValue>>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
    substituted_bytes: usize,
}

fn invalid(msg: String) -> DynamoError {
    DynamoError::Validation(msg)
}

impl<'a> Placeholders<'a> {
    pub fn new(
        names: Option<&'a BTreeMap<String, String>>,
        values: Option<&'a BTreeMap<String, AttributeValue>>,
    ) -> Self {
        Placeholders {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
            substituted_bytes: 0,
        }
    }

    fn spend(&mut self, bytes: usize) -> Result<(), DynamoError> {
        self.substituted_bytes += bytes;
        if self.substituted_bytes > MAX_SUBSTITUTED_BYTES {
            return Err(invalid(format!(
                "Invalid expression: its placeholders stand for more than {} MiB of names and values in all (each use counts); use each large value fewer times",
                MAX_SUBSTITUTED_BYTES >> 20
            )));
        }
        Ok(())
    }

    fn name(&mut self, n: &str, kind: Kind) -> Result<String, DynamoError> {
        if !n.starts_with('#') {
            return Ok(n.to_string());
        }
        match self.names.and_then(|m| m.get(n)) {
            Some(real) => {
                self.used_names.insert(n.to_string());
                self.spend(real.len())?;
                Ok(real.clone())
            }
            None => Err(invalid(format!(
                "Invalid {}: An expression attribute name used in the document path is not defined; attribute name: {n}",
                kind.param()
            ))),
        }
    }

    fn value(&mut self, v: &str, kind: Kind) -> Result<AttributeValue, DynamoError> {
        match self.values.and_then(|m| m.get(v)) {
            Some(val) => {
                // Checked once, however often it is used.
                if self.used_values.insert(v.to_string()) {
                    val.validate(1)?;
                }
                self.spend(footprint(val))?;
                Ok(val.clone())
            }
            None => Err(invalid(format!(
                "Invalid {}: An expression attribute value used in expression is not defined; attribute value: {v}",
                kind.param()
            ))),
        }
    }

    /// Once every expression is read: a placeholder given but never used is refused.
    pub fn check_all_used(&self) -> Result<(), DynamoError> {
        if let Some(m) = self.names {
            let unused: Vec<&String> = m.keys().filter(|k| !self.used_names.contains(*k)).collect();
            if !unused.is_empty() {
                return Err(invalid(format!(
                    "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                    unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if let Some(m) = self.values {
            let unused: Vec<&String> = m
                .keys()
                .filter(|k| !self.used_values.contains(*k))
                .collect();
            if !unused.is_empty() {
                return Err(invalid(format!(
                    "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                    unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(())
    }

    fn path(&mut self, p: &Path, kind: Kind) -> Result<Path, DynamoError> {
        p.0.iter()
            .map(|e| match e {
                PathElem::Name(n) => self.name(n, kind).map(PathElem::Name),
                PathElem::Index(i) => Ok(PathElem::Index(*i)),
            })
            .collect::<Result<_, _>>()
            .map(Path)
    }

    fn operand(&mut self, o: &Operand, kind: Kind) -> Result<Operand, DynamoError> {
        Ok(match o {
            Operand::Path(p) => Operand::Path(self.path(p, kind)?),
            Operand::Size(p) => Operand::Size(self.path(p, kind)?),
            Operand::ValueRef(v) => Operand::Const(self.value(v, kind)?),
            Operand::Const(c) => Operand::Const(c.clone()),
        })
    }

    fn cond(&mut self, c: &Cond, kind: Kind) -> Result<Cond, DynamoError> {
        Ok(match c {
            Cond::Cmp(a, op, b) => Cond::Cmp(self.operand(a, kind)?, *op, self.operand(b, kind)?),
            Cond::Between(a, lo, hi) => Cond::Between(
                self.operand(a, kind)?,
                self.operand(lo, kind)?,
                self.operand(hi, kind)?,
            ),
            Cond::In(_, list) if list.len() > MAX_IN_OPERANDS => {
                return Err(invalid(format!(
                    "Invalid {}: The IN operator is provided with too many operands; number of operands: {} (at most {MAX_IN_OPERANDS})",
                    kind.param(),
                    list.len()
                )))
            }
            Cond::In(a, list) => Cond::In(
                self.operand(a, kind)?,
                list.iter()
                    .map(|o| self.operand(o, kind))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Exists(p) => Cond::Exists(self.path(p, kind)?),
            Cond::NotExists(p) => Cond::NotExists(self.path(p, kind)?),
            Cond::Type(p, t) => Cond::Type(self.path(p, kind)?, self.operand(t, kind)?),
            Cond::BeginsWith(a, b) => {
                Cond::BeginsWith(self.operand(a, kind)?, self.operand(b, kind)?)
            }
            Cond::Contains(a, b) => Cond::Contains(self.operand(a, kind)?, self.operand(b, kind)?),
            Cond::And(a, b) => {
                Cond::And(Box::new(self.cond(a, kind)?), Box::new(self.cond(b, kind)?))
            }
            Cond::Or(a, b) => {
                Cond::Or(Box::new(self.cond(a, kind)?), Box::new(self.cond(b, kind)?))
            }
            Cond::Not(a) => Cond::Not(Box::new(self.cond(a, kind)?)),
        })
    }

    fn update_operand(&mut self, u: &UpdateOperand) -> Result<UpdateOperand, DynamoError> {
        let k = Kind::Update;
        Ok(match u {
            UpdateOperand::Operand(o) => UpdateOperand::Operand(self.operand(o, k)?),
            UpdateOperand::IfNotExists(p, d) => {
                UpdateOperand::IfNotExists(self.path(p, k)?, Box::new(self.update_operand(d)?))
            }
            UpdateOperand::ListAppend(a, b) => UpdateOperand::ListAppend(
                Box::new(self.update_operand(a)?),
                Box::new(self.update_operand(b)?),
            ),
        })
    }

    /// Parses and resolves a condition, filter or key-condition expression.
    pub fn condition(&mut self, text: &str, kind: Kind) -> Result<Cond, DynamoError> {
        let raw = parse::condition(text, kind)?;
        self.cond(&raw, kind)
    }

    /// Parses and resolves an update expression.
    pub fn update(&mut self, text: &str) -> Result<Update, DynamoError> {
        let raw = parse::update(text)?;
        let k = Kind::Update;
        Ok(Update {
            set: raw
                .set
                .iter()
                .map(|(p, v)| {
                    let v = match v {
                        SetValue::Value(a) => SetValue::Value(self.update_operand(a)?),
                        SetValue::Plus(a, b) => {
                            SetValue::Plus(self.update_operand(a)?, self.update_operand(b)?)
                        }
                        SetValue::Minus(a, b) => {
                            SetValue::Minus(self.update_operand(a)?, self.update_operand(b)?)
                        }
                    };
                    Ok((self.path(p, k)?, v))
                })
                .collect::<Result<_, DynamoError>>()?,
            remove: raw
                .remove
                .iter()
                .map(|p| self.path(p, k))
                .collect::<Result<_, _>>()?,
            add: raw
                .add
                .iter()
                .map(|(p, v)| Ok((self.path(p, k)?, self.operand(v, k)?)))
                .collect::<Result<_, DynamoError>>()?,
            delete: raw
                .delete
                .iter()
                .map(|(p, v)| Ok((self.path(p, k)?, self.operand(v, k)?)))
                .collect::<Result<_, DynamoError>>()?,
        })
    }

    /// Parses and resolves a projection expression.
    pub fn projection(&mut self, text: &str) -> Result<Vec<Path>, DynamoError> {
        let paths: Vec<Path> = parse::projection(text)?
            .iter()
            .map(|p| self.path(p, Kind::Projection))
            .collect::<Result<_, _>>()?;
        for (i, a) in paths.iter().enumerate() {
            for b in &paths[i + 1..] {
                if a.0.iter().zip(&b.0).all(|(x, y)| x == y) {
                    return Err(invalid(format!(
                        "Invalid ProjectionExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [{a}], path two: [{b}]"
                    )));
                }
            }
        }
        Ok(paths)
    }
}
