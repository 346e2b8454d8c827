//! The grammar of DynamoDB expressions, with `winnow` combinators. Keywords and function
//! names are case-insensitive; whitespace goes anywhere between tokens.
//!
//! ```text
//! condition  := or
//! or         := and (OR and)*
//! and        := not (AND not)*
//! not        := NOT not | primary
//! primary    := '(' condition ')' | function '(' args ')' | operand comparison
//! comparison := cmp operand | BETWEEN operand AND operand | IN '(' operand (',' operand)* ')'
//! cmp        := = | <> | < | <= | > | >=
//! function   := attribute_exists | attribute_not_exists | attribute_type | begins_with | contains
//! operand    := size '(' path ')' | :value | path
//! path       := name ('.' name | '[' digits ']')*        name := ident | #ident
//! update     := (SET set (',' set)* | REMOVE path (',' path)* | ADD path :v (',' ...)*
//!                | DELETE path :v (',' ...)*)+            each clause at most once
//! set        := path '=' uop (('+' | '-') uop)?
//! uop        := if_not_exists '(' path ',' uop ')' | list_append '(' uop ',' uop ')' | operand
//! projection := path (',' path)*
//! ```

use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, delimited, eof, opt, preceded, separated, terminated};
use winnow::error::ContextError;
use winnow::prelude::*;
use winnow::token::take_while;

use super::MAX_EXPRESSION_BYTES;
use super::{invalid, CmpOp, Cond, Kind, Operand, Path, PathElem, SetValue, Update, UpdateOperand};
use crate::dynamo::error::DynamoError;

type In<'a> = &'a str;
type PResult<T> = winnow::Result<T, ContextError>;

/// Deepest nesting of parentheses and NOTs.
const MAX_NESTING: usize = 64;

fn backtrack<T>() -> PResult<T> {
    Err(ContextError::new())
}

fn ws(i: &mut In<'_>) -> PResult<()> {
    multispace0.void().parse_next(i)
}

fn word<'a>(i: &mut In<'a>) -> PResult<&'a str> {
    take_while(1.., |c: char| c.is_ascii_alphanumeric() || c == '_').parse_next(i)
}

/// A keyword (or function name), case-insensitive, not a prefix of a longer word.
fn kw<'a>(k: &'static str) -> impl FnMut(&mut In<'a>) -> PResult<()> {
    move |i: &mut In<'a>| {
        let start = *i;
        ws(i)?;
        match word(i) {
            Ok(w) if w.eq_ignore_ascii_case(k) => ws(i),
            _ => {
                *i = start;
                backtrack()
            }
        }
    }
}

fn sym<'a>(s: &'static str) -> impl FnMut(&mut In<'a>) -> PResult<()> {
    move |i: &mut In<'a>| delimited(ws, s, ws).void().parse_next(i)
}

fn name(i: &mut In<'_>) -> PResult<String> {
    let hash = opt('#').parse_next(i)?;
    let w = word(i)?;
    match hash {
        Some(_) => Ok(format!("#{w}")),
        None if w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => Ok(w.to_string()),
        None => backtrack(),
    }
}

fn path(i: &mut In<'_>) -> PResult<Path> {
    ws(i)?;
    let first = name(i)?;
    let mut elems = vec![PathElem::Name(first)];
    loop {
        let start = *i;
        ws(i)?;
        if let Ok(n) = preceded(('.', ws), name).parse_next(i) {
            elems.push(PathElem::Name(n));
            continue;
        }
        if let Ok(d) = delimited(('[', ws), digit1, (ws, ']')).parse_next(i) {
            let idx = d.parse::<usize>().or_else(|_| backtrack())?;
            elems.push(PathElem::Index(idx));
            continue;
        }
        *i = start;
        break;
    }
    ws(i)?;
    Ok(Path(elems))
}

fn value_ref(i: &mut In<'_>) -> PResult<String> {
    delimited(ws, preceded(':', word), ws)
        .map(|w: &str| format!(":{w}"))
        .parse_next(i)
}

fn operand(i: &mut In<'_>) -> PResult<Operand> {
    alt((
        preceded((kw("size"), sym("(")), terminated(path, sym(")"))).map(Operand::Size),
        value_ref.map(Operand::ValueRef),
        path.map(Operand::Path),
    ))
    .parse_next(i)
}

fn cmp_op(i: &mut In<'_>) -> PResult<CmpOp> {
    delimited(
        ws,
        alt((
            "<>".value(CmpOp::Ne),
            "<=".value(CmpOp::Le),
            ">=".value(CmpOp::Ge),
            "=".value(CmpOp::Eq),
            "<".value(CmpOp::Lt),
            ">".value(CmpOp::Gt),
        )),
        ws,
    )
    .parse_next(i)
}

fn function(i: &mut In<'_>) -> PResult<Cond> {
    alt((
        delimited((kw("attribute_exists"), sym("(")), path, sym(")")).map(Cond::Exists),
        delimited((kw("attribute_not_exists"), sym("(")), path, sym(")")).map(Cond::NotExists),
        delimited(
            (kw("attribute_type"), sym("(")),
            (terminated(path, sym(",")), operand),
            sym(")"),
        )
        .map(|(p, t)| Cond::Type(p, t)),
        // The first argument is an attribute path in DynamoDB's grammar: a constant there
        // would be searched again for every item a Scan reads.
        delimited(
            (kw("begins_with"), sym("(")),
            (terminated(path.map(Operand::Path), sym(",")), operand),
            sym(")"),
        )
        .map(|(a, b)| Cond::BeginsWith(a, b)),
        delimited(
            (kw("contains"), sym("(")),
            (terminated(path.map(Operand::Path), sym(",")), operand),
            sym(")"),
        )
        .map(|(a, b)| Cond::Contains(a, b)),
    ))
    .parse_next(i)
}

fn comparison(i: &mut In<'_>) -> PResult<Cond> {
    let left = operand(i)?;
    // After `BETWEEN` or `IN (` the rest must follow: a failure there is the error, never a
    // reason to read the same text as a comparison.
    let before = *i;
    if kw("BETWEEN").parse_next(i).is_ok() {
        let lo = terminated(operand, kw("AND")).parse_next(i)?;
        let hi = operand(i)?;
        return Ok(Cond::Between(left, lo, hi));
    }
    *i = before;
    if (kw("IN"), sym("(")).parse_next(i).is_ok() {
        // The count (1 to 100) is checked with the placeholders, for a clear message.
        let list = terminated(separated(1.., operand, sym(",")), sym(")")).parse_next(i)?;
        return Ok(Cond::In(left, list));
    }
    *i = before;
    let op = cmp_op(i)?;
    let right = operand(i)?;
    Ok(Cond::Cmp(left, op, right))
}

fn primary(i: &mut In<'_>, depth: usize) -> PResult<Cond> {
    if depth > MAX_NESTING {
        return backtrack();
    }
    let start = *i;
    if sym("(").parse_next(i).is_ok() {
        let c = or_expr(i, depth + 1)?;
        sym(")").parse_next(i)?;
        return Ok(c);
    }
    *i = start;
    if let Ok(c) = function(i) {
        return Ok(c);
    }
    *i = start;
    comparison(i)
}

fn not_expr(i: &mut In<'_>, depth: usize) -> PResult<Cond> {
    if depth > MAX_NESTING {
        return backtrack();
    }
    if kw("NOT").parse_next(i).is_ok() {
        return Ok(Cond::Not(Box::new(not_expr(i, depth + 1)?)));
    }
    primary(i, depth)
}

fn and_expr(i: &mut In<'_>, depth: usize) -> PResult<Cond> {
    let mut c = not_expr(i, depth)?;
    while kw("AND").parse_next(i).is_ok() {
        c = Cond::And(Box::new(c), Box::new(not_expr(i, depth)?));
    }
    Ok(c)
}

fn or_expr(i: &mut In<'_>, depth: usize) -> PResult<Cond> {
    let mut c = and_expr(i, depth)?;
    while kw("OR").parse_next(i).is_ok() {
        c = Cond::Or(Box::new(c), Box::new(and_expr(i, depth)?));
    }
    Ok(c)
}

fn update_operand(i: &mut In<'_>, depth: usize) -> PResult<UpdateOperand> {
    if depth > MAX_NESTING {
        return backtrack();
    }
    let start = *i;
    if let Ok(p) =
        preceded((kw("if_not_exists"), sym("(")), terminated(path, sym(","))).parse_next(i)
    {
        let d = update_operand(i, depth + 1)?;
        sym(")").parse_next(i)?;
        return Ok(UpdateOperand::IfNotExists(p, Box::new(d)));
    }
    *i = start;
    if (kw("list_append"), sym("(")).parse_next(i).is_ok() {
        let a = update_operand(i, depth + 1)?;
        sym(",").parse_next(i)?;
        let b = update_operand(i, depth + 1)?;
        sym(")").parse_next(i)?;
        return Ok(UpdateOperand::ListAppend(Box::new(a), Box::new(b)));
    }
    *i = start;
    operand.map(UpdateOperand::Operand).parse_next(i)
}

fn set_action(i: &mut In<'_>) -> PResult<(Path, SetValue)> {
    let p = path(i)?;
    sym("=").parse_next(i)?;
    let a = update_operand(i, 0)?;
    let start = *i;
    if sym("+").parse_next(i).is_ok() {
        return Ok((p, SetValue::Plus(a, update_operand(i, 0)?)));
    }
    *i = start;
    if sym("-").parse_next(i).is_ok() {
        return Ok((p, SetValue::Minus(a, update_operand(i, 0)?)));
    }
    *i = start;
    Ok((p, SetValue::Value(a)))
}

fn path_value(i: &mut In<'_>) -> PResult<(Path, Operand)> {
    (path, value_ref.map(Operand::ValueRef)).parse_next(i)
}

/// Where parsing stopped, as DynamoDB words it: the token there and what is near it.
fn syntax_error(text: &str, offset: usize, kind: Kind) -> DynamoError {
    let offset = offset.min(text.len());
    let rest = &text[offset..];
    let token: String = rest
        .trim_start()
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(32)
        .collect();
    let token = if token.is_empty() {
        "<EOF>".to_string()
    } else {
        token
    };
    let near_start = text[..offset]
        .char_indices()
        .rev()
        .nth(12)
        .map_or(0, |(i, _)| i);
    let near: String = text[near_start..].chars().take(32).collect();
    invalid(format!(
        "Invalid {}: Syntax error; token: \"{token}\", near: \"{near}\" (at character {offset})",
        kind.param()
    ))
}

fn checked(text: &str, kind: Kind) -> Result<&str, DynamoError> {
    if text.trim().is_empty() {
        return Err(invalid(format!(
            "Invalid {}: The expression can not be empty;",
            kind.param()
        )));
    }
    if text.len() > MAX_EXPRESSION_BYTES {
        return Err(invalid(format!(
            "Invalid {}: Expression size has exceeded the maximum allowed size; expression size: {}",
            kind.param(),
            text.len()
        )));
    }
    Ok(text)
}

/// Runs `p` over all of `text`; a failure names where it stopped.
fn whole<T>(
    text: &str,
    kind: Kind,
    mut p: impl FnMut(&mut In<'_>) -> PResult<T>,
) -> Result<T, DynamoError> {
    let text = checked(text, kind)?;
    let mut input = text;
    match p(&mut input) {
        Ok(v) => {
            let before = input;
            match (ws, eof).parse_next(&mut input) {
                Ok(_) => Ok(v),
                Err(_) => Err(syntax_error(text, text.len() - before.len(), kind)),
            }
        }
        Err(_) => Err(syntax_error(text, text.len() - input.len(), kind)),
    }
}

pub fn condition(text: &str, kind: Kind) -> Result<Cond, DynamoError> {
    whole(text, kind, |i| or_expr(i, 0))
}

pub fn projection(text: &str) -> Result<Vec<Path>, DynamoError> {
    whole(text, Kind::Projection, |i| {
        separated(1.., path, sym(",")).parse_next(i)
    })
}

pub fn update(text: &str) -> Result<Update, DynamoError> {
    let kind = Kind::Update;
    let text = checked(text, kind)?;
    let mut input = text;
    let mut u = Update::default();
    let mut seen = [false; 4];
    loop {
        ws(&mut input).ok();
        if input.is_empty() {
            break;
        }
        let at = text.len() - input.len();
        let (clause, ok) = if kw("SET").parse_next(&mut input).is_ok() {
            (
                0,
                separated(1.., set_action, sym(","))
                    .parse_next(&mut input)
                    .map(|v: Vec<_>| u.set = v)
                    .is_ok(),
            )
        } else if kw("REMOVE").parse_next(&mut input).is_ok() {
            (
                1,
                separated(1.., path, sym(","))
                    .parse_next(&mut input)
                    .map(|v: Vec<_>| u.remove = v)
                    .is_ok(),
            )
        } else if kw("ADD").parse_next(&mut input).is_ok() {
            (
                2,
                separated(1.., path_value, sym(","))
                    .parse_next(&mut input)
                    .map(|v: Vec<_>| u.add = v)
                    .is_ok(),
            )
        } else if kw("DELETE").parse_next(&mut input).is_ok() {
            (
                3,
                separated(1.., path_value, sym(","))
                    .parse_next(&mut input)
                    .map(|v: Vec<_>| u.delete = v)
                    .is_ok(),
            )
        } else {
            return Err(syntax_error(text, at, kind));
        };
        if !ok {
            return Err(syntax_error(text, text.len() - input.len(), kind));
        }
        if std::mem::replace(&mut seen[clause], true) {
            let name = ["SET", "REMOVE", "ADD", "DELETE"][clause];
            return Err(invalid(format!(
                "Invalid UpdateExpression: The \"{name}\" section can only be used once in an update expression;"
            )));
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        path.parse(s).unwrap()
    }

    #[test]
    fn paths_names_and_indexes() {
        assert_eq!(
            p("a.b[3].#c"),
            Path(vec![
                PathElem::Name("a".into()),
                PathElem::Name("b".into()),
                PathElem::Index(3),
                PathElem::Name("#c".into()),
            ])
        );
        assert!(path.parse("1a").is_err());
    }

    #[test]
    fn conditions_parse_with_precedence() {
        let c = condition("a = :x OR b < :y AND NOT c <> :z", Kind::Condition).unwrap();
        match c {
            Cond::Or(l, r) => {
                assert!(matches!(*l, Cond::Cmp(_, CmpOp::Eq, _)));
                assert!(matches!(*r, Cond::And(_, _)));
            }
            other => panic!("{other:?}"),
        }
        for ok in [
            "attribute_exists(a) and attribute_not_exists(#b.c)",
            "size(a) >= :n",
            "a BETWEEN :lo AND :hi",
            "a IN (:x, :y, :z)",
            "begins_with(#s, :p) OR contains(tags, :t)",
            "(a = :x)",
            "NOT (a = :x AND b = :y)",
            "attribute_type(a, :t)",
            "andy = :x",
            "size = :x",
        ] {
            condition(ok, Kind::Condition).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn syntax_errors_name_the_position() {
        for (bad, at) in [
            ("a = ", 4),
            ("a == :x", 3),
            ("(a = :x", 7),
            ("a = :x AND", 10),
            ("attribute_exists(a", 16),
            ("a = :x b = :y", 7),
        ] {
            let e = condition(bad, Kind::Condition).unwrap_err().to_string();
            assert!(e.contains("Syntax error"), "{bad}: {e}");
            assert!(e.contains(&format!("at character {at})")), "{bad}: {e}");
        }
        assert!(condition("", Kind::Filter)
            .unwrap_err()
            .to_string()
            .contains("can not be empty"));
        let deep = format!("{}a = :x{}", "(".repeat(100), ")".repeat(100));
        assert!(condition(&deep, Kind::Condition).is_err());
        // A broken BETWEEN or IN is an error, not read again as a comparison.
        for bad in ["a BETWEEN :x = :x", "a IN (:x, :x = :x", "a BETWEEN :x"] {
            assert!(condition(bad, Kind::Condition).is_err(), "{bad}");
        }
        assert!(condition("a BETWEEN :x AND :y", Kind::Condition).is_ok());
        assert!(condition("a IN (:x, :y) AND b = :x", Kind::Condition).is_ok());
    }

    #[test]
    fn update_clauses() {
        let u = update(
            "SET a = :x, b = if_not_exists(b, :zero) + :one REMOVE c, d[2] ADD n :i DELETE s :v",
        )
        .unwrap();
        assert_eq!(u.set.len(), 2);
        assert!(matches!(
            u.set[1].1,
            SetValue::Plus(UpdateOperand::IfNotExists(..), _)
        ));
        assert_eq!(u.remove.len(), 2);
        assert_eq!(u.add.len(), 1);
        assert_eq!(u.delete.len(), 1);
        let u = update("set l = list_append(l, :more)").unwrap();
        assert!(matches!(
            u.set[0].1,
            SetValue::Value(UpdateOperand::ListAppend(..))
        ));
        for bad in [
            "SET",
            "SET a",
            "SET a = :x SET b = :y",
            "UPSERT a = :x",
            "REMOVE",
            "ADD a",
        ] {
            assert!(update(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn projections() {
        assert_eq!(projection("a, b.c, #d[1]").unwrap().len(), 3);
        assert!(projection("a,,b").is_err());
    }
}
