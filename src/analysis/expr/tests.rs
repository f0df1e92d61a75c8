use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;

use super::gofmt::go_duration;
use super::*;

fn f(x: f64) -> MetricValue {
    MetricValue::Float(x)
}
fn s(x: &str) -> MetricValue {
    MetricValue::String(x.to_owned())
}
fn list(xs: &[f64]) -> MetricValue {
    MetricValue::from(xs.to_vec())
}
fn js(v: serde_json::Value) -> MetricValue {
    MetricValue::from_json(&v)
}
const NIL: MetricValue = MetricValue::Nil;
const TRUE: MetricValue = MetricValue::Bool(true);

#[derive(Debug)]
enum Want {
    Yes,
    No,
    /// The exact error message.
    Fails(&'static str),
    /// An error whose message contains this.
    Mentions(&'static str),
}
use Want::*;

/// Runs every row and reports all mismatches at once.
fn table(rows: &[(&str, MetricValue, Want)]) {
    let mut failures = Vec::new();
    for (expr, result, want) in rows {
        let got = eval_condition(expr, result);
        let ok = match (want, &got) {
            (Yes, Ok(true)) | (No, Ok(false)) => true,
            (Fails(msg), Err(e)) => e.to_string() == *msg,
            (Mentions(msg), Err(e)) => e.to_string().contains(msg),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{expr:?} on {result:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing rows:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn result_indexing_and_slicing() {
    table(&[
        ("result", TRUE, Yes),
        ("result", MetricValue::Bool(false), No),
        // upstream TestEvaluateConditionWithSuccess / WithFailure / TestEvaluateFloat64
        ("result == true", TRUE, Yes),
        ("result == false", TRUE, No),
        ("result > 1", f(5.0), Yes),
        // Prometheus vector: result is []float64
        ("result[0] >= 0.95", list(&[0.99]), Yes),
        ("result[0] >= 0.95", list(&[0.5]), No),
        ("result[1] == 2", list(&[1.0, 2.0]), Yes),
        ("result[-1] == 2", list(&[1.0, 2.0]), Yes),
        (
            "result[0] >= 0.95",
            list(&[]),
            Fails("index out of range: 0 (array length is 0)"),
        ),
        (
            "result[2] > 0",
            list(&[1.0]),
            Fails("index out of range: 2 (array length is 1)"),
        ),
        ("result[0:1] == [1]", list(&[1.0, 2.0]), Yes),
        ("result[1:] == [2]", list(&[1.0, 2.0]), Yes),
        ("result[:1][0] == 1", list(&[1.0, 2.0]), Yes),
        ("result[5:] == []", list(&[1.0, 2.0]), Yes),
        // upstream TestEvaluateInOperator
        ("2 in result", list(&[2.0, 2.0]), Yes),
        ("3 in result", list(&[2.0, 2.0]), No),
        ("3 not in result", list(&[2.0, 2.0]), Yes),
        (
            "result[0] == 'x'",
            list(&[1.0]),
            Fails("invalid operation: == (mismatched types float64 and string)"),
        ),
        (
            "result['a'] > 0",
            list(&[1.0]),
            Fails("array elements can only be selected using an integer (got string)"),
        ),
        (
            "'x' in result",
            list(&[1.0]),
            Fails("cannot use string as type float64 in array"),
        ),
        (
            "result[0] > 0",
            f(1.0),
            Fails("type float64[int] is undefined"),
        ),
    ]);
}

#[test]
fn len() {
    table(&[
        ("len(result) == 2", list(&[1.0, 2.0]), Yes),
        ("len(result) == 0", list(&[]), Yes),
        ("len(result) > 0", list(&[]), No),
        // Go counts bytes.
        ("len(result) == 6", s("héllo"), Yes),
        ("len(result) == 1", js(json!({"a": 1})), Yes),
        ("len(result.a) == 3", js(json!({"a": "abc"})), Yes),
        (
            "len(result) > 0",
            f(1.0),
            Fails("invalid argument for len (type float64)"),
        ),
        (
            "len(result.a) > 0",
            js(json!({"a": 1})),
            Fails("invalid argument for len (type float64)"),
        ),
        (
            "len(result, 1) > 0",
            list(&[]),
            Fails("invalid number of arguments (expected 1, got 2)"),
        ),
        ("result | len() == 1", list(&[1.0]), Yes),
    ]);
}

#[test]
fn predicates() {
    table(&[
        ("all(result, {# > 0.9})", list(&[0.95, 0.99]), Yes),
        ("all(result, {# > 0.9})", list(&[0.95, 0.5]), No),
        ("all(result, {# > 0.9})", list(&[]), Yes),
        ("all(result, # > 0.9)", list(&[0.95]), Yes),
        ("any(result, {# > 0.9})", list(&[0.1, 0.95]), Yes),
        ("any(result, {# > 0.9})", list(&[0.1]), No),
        ("any(result, {# > 0.9})", list(&[]), No),
        ("none(result, {# > 0.9})", list(&[0.1]), Yes),
        ("one(result, {# > 0.9})", list(&[0.95, 0.1]), Yes),
        ("one(result, {# > 0.9})", list(&[0.95, 0.99]), No),
        (
            "len(filter(result, {# > 0.5})) == 1",
            list(&[0.4, 0.6]),
            Yes,
        ),
        ("map(result, {# * 2}) == [2, 4]", list(&[1.0, 2.0]), Yes),
        ("map(result, {#index}) == [0, 1]", list(&[1.0, 2.0]), Yes),
        ("count(result, {# > 1}) == 1", list(&[1.0, 2.0]), Yes),
        ("count([true, false, true]) == 2", NIL, Yes),
        ("sum(result) == 3", list(&[1.0, 2.0]), Yes),
        ("sum(result, {# * 2}) == 6", list(&[1.0, 2.0]), Yes),
        ("find(result, {# > 1}) == 2", list(&[1.0, 2.0, 3.0]), Yes),
        (
            "findIndex(result, {# > 1}) == 1",
            list(&[1.0, 2.0, 3.0]),
            Yes,
        ),
        (
            "findLast(result, {# > 1}) == 3",
            list(&[1.0, 2.0, 3.0]),
            Yes,
        ),
        (
            "findLastIndex(result, {# > 5}) == -1",
            list(&[1.0, 2.0, 3.0]),
            Yes,
        ),
        ("find(result, {# > 5}) == nil", list(&[1.0]), Yes),
        (
            "reduce(result, #acc + #, 0) == 6",
            list(&[1.0, 2.0, 3.0]),
            Yes,
        ),
        ("reduce(result, #acc + #) == 6", list(&[1.0, 2.0, 3.0]), Yes),
        ("sortBy(result, #)[0] == 1", list(&[3.0, 1.0, 2.0]), Yes),
        (
            "sortBy(result, #, 'desc')[0] == 3",
            list(&[3.0, 1.0, 2.0]),
            Yes,
        ),
        (
            "sortBy(result, -#) == [3, 2, 1]",
            list(&[1.0, 3.0, 2.0]),
            Yes,
        ),
        (
            "groupBy(result.items, .kind).a[0].v == 1",
            js(json!({"items": [{"kind": "a", "v": 1}, {"kind": "b", "v": 2}]})),
            Yes,
        ),
        (
            "all(result.items, .v > 0)",
            js(json!({"items": [{"v": 1}, {"v": 2}]})),
            Yes,
        ),
        (
            "all(result, {all(result, {# > 0})})",
            list(&[1.0, 2.0]),
            Yes,
        ),
        ("result | all(# > 0.5)", list(&[0.6]), Yes),
        ("result | map(# + 1) | sum() == 5", list(&[1.0, 2.0]), Yes),
        // upstream TestEvaluateArray
        (
            "all(result.service_apdex.values.values, {# > 1})",
            js(json!({"service_apdex": {"label": null, "values": {"values": [2, 2]}}})),
            Yes,
        ),
        (
            "all(result, {# > '0'})",
            list(&[1.0]),
            Fails("invalid operation: > (mismatched types float64 and string)"),
        ),
        (
            "all(result, {#})",
            list(&[1.0]),
            Fails("predicate should return boolean (got float64)"),
        ),
        (
            "all(result, {# > 0})",
            f(1.0),
            Fails("builtin all takes only array (got float64)"),
        ),
        (
            "all(result.a, {#})",
            js(json!({"a": [1]})),
            Fails("interface conversion: interface {} is float64, not bool"),
        ),
        (
            "map(result, {#acc})",
            list(&[1.0]),
            Fails("unknown pointer #acc"),
        ),
        (
            "all(result)",
            list(&[1.0]),
            Fails("expected at least 2 arguments"),
        ),
    ]);
}

#[test]
fn comparisons() {
    table(&[
        ("result < 1", f(0.5), Yes),
        ("result <= 0.5", f(0.5), Yes),
        ("result > 0.5", f(0.5), No),
        ("result >= 0.5", f(0.5), Yes),
        ("result == 0.5", f(0.5), Yes),
        ("result != 0.5", f(0.5), No),
        ("result == 1", f(1.0), Yes),
        ("1 < 2", NIL, Yes),
        ("2 <= 2", NIL, Yes),
        ("3 > 4", NIL, No),
        ("3 >= 4", NIL, No),
        ("1 == 1", NIL, Yes),
        ("1 != 1", NIL, No),
        ("result == 3", MetricValue::Int(3), Yes),
        ("result == 3.0", MetricValue::Int(3), Yes),
        ("result < 4", MetricValue::Int(3), Yes),
        ("asInt(result) < 3", s("2"), Yes),
        ("result == 'ok'", s("ok"), Yes),
        ("result != 'ok'", s("ok"), No),
        ("result < 'b'", s("a"), Yes),
        ("result >= 'b'", s("a"), No),
        ("result <= 'a'", s("a"), Yes),
        ("result > 'A'", s("a"), Yes),
        ("0 < result < 1", f(0.5), Yes),
        ("0 < result < 1", f(1.5), No),
        ("result == nil", NIL, Yes),
        ("result != nil", f(1.0), Yes),
        (
            "result > 1",
            s("a"),
            Fails("invalid operation: > (mismatched types string and int)"),
        ),
        (
            "result.a < 1",
            js(json!({"a": "x"})),
            Fails("invalid operation: string < int"),
        ),
        ("result.a == 'x'", js(json!({"a": 1})), No),
    ]);
}

#[test]
fn logic() {
    table(&[
        ("result > 0.5 && result < 1", f(0.7), Yes),
        ("result > 0.5 and result < 0.6", f(0.7), No),
        ("result < 0.5 || result > 0.9", f(0.95), Yes),
        ("result < 0.5 or result > 0.9", f(0.7), No),
        ("!(result > 0.5)", f(0.7), No),
        ("not (result > 0.5)", f(0.3), Yes),
        ("!result", MetricValue::Bool(false), Yes),
        ("not result", TRUE, No),
        ("not false", NIL, Yes),
        ("!!true", NIL, Yes),
        // short-circuit: the right side is never evaluated
        ("false && result[5] > 0", list(&[]), No),
        ("true || result[5] > 0", list(&[]), Yes),
        (
            "!result",
            f(1.0),
            Fails("invalid operation: ! (mismatched type float64)"),
        ),
        (
            "result > 0 && 1",
            f(1.0),
            Fails("invalid operation: && (mismatched types bool and int)"),
        ),
        (
            "result.a && true",
            js(json!({"a": 1})),
            Fails("interface conversion: interface {} is float64, not bool"),
        ),
        ("result > 0.5 ? true : false", f(0.7), Yes),
        ("result > 0.5 ? false : true", f(0.7), No),
        ("if result > 0.5 { true } else { false }", f(0.7), Yes),
        (
            "if result > 0.9 { true } else if result > 0.5 { true } else { false }",
            f(0.7),
            Yes,
        ),
        ("(result ?? 2) > 1", NIL, Yes),
        ("(result.missing ?? 2) > 1", js(json!({})), Yes),
        ("let x = result * 2; x > 1", f(0.7), Yes),
        ("let x = 1; let y = x + 1; y == 2", NIL, Yes),
    ]);
}

#[test]
fn arithmetic() {
    table(&[
        ("result + 1 == 1.5", f(0.5), Yes),
        ("result - 0.25 == 0.25", f(0.5), Yes),
        ("result * 2 == 1", f(0.5), Yes),
        ("result / 2 == 0.25", f(0.5), Yes),
        ("7 % 3 == 1", NIL, Yes),
        ("-7 % 3 == -1", NIL, Yes),
        ("2 ** 10 == 1024", NIL, Yes),
        ("2 ^ 3 == 8", NIL, Yes),
        ("2 ** 3 ** 2 == 512", NIL, Yes),
        ("-2 ** 2 == -4", NIL, Yes),
        ("10 / 4 == 2.5", NIL, Yes),
        ("1 / 0 > 1e308", NIL, Yes),
        ("1 + 2 * 3 == 7", NIL, Yes),
        ("(1 + 2) * 3 == 9", NIL, Yes),
        ("-result == -0.5", f(0.5), Yes),
        ("+result == 0.5", f(0.5), Yes),
        ("'a' + 'b' == 'ab'", NIL, Yes),
        ("9223372036854775807 + 1 < 0", NIL, Yes),
        ("0x10 + 0b11 + 0o7 + 1_000 == 1026", NIL, Yes),
        ("1e3 == 1000 && .5 == 0.5", NIL, Yes),
        (
            "5 % 0 == 0",
            NIL,
            Fails("runtime error: integer divide by zero"),
        ),
        (
            "result % 2 == 0",
            f(4.0),
            Fails("invalid operation: % (mismatched types float64 and int)"),
        ),
        (
            "result.a % 2 == 0",
            js(json!({"a": 4})),
            Fails("invalid operation: float64 % int"),
        ),
        (
            "result + 'a'",
            f(1.0),
            Fails("invalid operation: + (mismatched types float64 and string)"),
        ),
    ]);
}

#[test]
fn argo_functions() {
    table(&[
        ("isNaN(result)", f(f64::NAN), Yes),
        ("isNaN(result)", f(0.5), No),
        ("isNaN(result[0])", list(&[f64::NAN]), Yes),
        ("isNaN(1)", NIL, No),
        ("isNaN(1 + 2)", NIL, No),
        ("isInf(result)", f(f64::INFINITY), Yes),
        ("isInf(result)", f(f64::NEG_INFINITY), Yes),
        ("isInf(result)", f(1.0), No),
        (
            "isNaN(result)",
            s("x"),
            Fails("cannot use string as argument (type float64) to call isNaN "),
        ),
        (
            "isNaN(result)",
            NIL,
            Fails("cannot use nil as argument (type float64) to call isNaN"),
        ),
        (
            "isNaN(result.a)",
            js(json!({"a": "x"})),
            Fails("interface conversion: interface {} is string, not float64"),
        ),
        (
            "isNaN()",
            f(1.0),
            Fails("not enough arguments to call isNaN"),
        ),
        (
            "isInf(1, 2)",
            f(1.0),
            Fails("too many arguments to call isInf"),
        ),
        // isNil and default ignore their first argument and test the result.
        ("isNil(result)", NIL, Yes),
        ("isNil(result)", f(0.5), No),
        ("isNil(42)", NIL, Yes),
        ("isNil(nil)", f(1.0), No),
        ("isNil(result)", list(&[]), No),
        ("default(result, 0) >= 0.95", NIL, No),
        ("default(result, 1) == 1", NIL, Yes),
        ("default(result, 0) >= 0.95", f(0.99), Yes),
        ("default(nil, 5) == 5", NIL, Yes),
        ("default(result.missing, 5) == 5", js(json!({"a": 1})), No),
        // upstream TestEvaluateAsInt, TestEvaluateAsIntPanic, TestAsInt
        ("asInt(result) == 1", s("1"), Yes),
        ("asInt(result) == 1", MetricValue::Int(1), Yes),
        ("asInt(result) == 1", f(1.123), Yes),
        ("asInt(result) == -2", f(-2.9), Yes),
        (
            "asInt(result) == 1.1",
            s("1.1"),
            Fails("strconv.ParseInt: parsing \"1.1\": invalid syntax"),
        ),
        (
            "asInt(result) == 1",
            s("notint"),
            Fails("strconv.ParseInt: parsing \"notint\": invalid syntax"),
        ),
        (
            "asInt(result) > 0",
            s("99999999999999999999"),
            Fails("strconv.ParseInt: parsing \"99999999999999999999\": value out of range"),
        ),
        (
            "asInt(result) == 1",
            TRUE,
            Fails("asInt() not supported on bool true"),
        ),
        (
            "asInt(result) == 1",
            NIL,
            Fails("asInt() not supported on <nil> <nil>"),
        ),
        (
            "asInt(result) == 1",
            js(json!([1])),
            Fails("asInt() not supported on []interface {} [1]"),
        ),
        // upstream TestEvaluateAsFloat, TestEvaluateAsFloatError, TestAsFloat
        ("asFloat(result) == 1.1", s("1.1"), Yes),
        ("asFloat(result) >= 1.1", s("1.1"), Yes),
        ("asFloat(result) <= 1.1", s("1.1"), Yes),
        ("asFloat(result) == 1.1", f(1.1), Yes),
        ("asFloat(result) == 1", MetricValue::Int(1), Yes),
        ("asFloat(result) >= 1", MetricValue::Int(1), Yes),
        ("asFloat(result) == 1", s("1"), Yes),
        ("asFloat(result) == 0.5", s("0.5"), Yes),
        ("isInf(asFloat(result))", s("+Inf"), Yes),
        ("isNaN(asFloat(result))", s("NaN"), Yes),
        (
            "asFloat(result) == 1.1",
            s("NotANum"),
            Fails("strconv.ParseFloat: parsing \"NotANum\": invalid syntax"),
        ),
        (
            "asFloat(result) == \"1.1\"",
            s("1.1"),
            Fails("invalid operation: == (mismatched types float64 and string)"),
        ),
        (
            "asFloat(result) > 0",
            s("1e400"),
            Fails("strconv.ParseFloat: parsing \"1e400\": value out of range"),
        ),
        (
            "asFloat(result) == 1",
            TRUE,
            Fails("asFloat() not supported on bool true"),
        ),
    ]);
}

#[test]
fn web_provider_json() {
    let body = js(json!({
        "status": "ok",
        "count": 3,
        "data": {"value": 0.97, "tags": ["a", "b"]},
    }));
    table(&[
        ("result.status == 'ok'", body.clone(), Yes),
        ("result[\"status\"] == 'ok'", body.clone(), Yes),
        ("result.data.value > 0.95", body.clone(), Yes),
        ("result['data']['value'] > 0.95", body.clone(), Yes),
        ("result.data.tags[1] == 'b'", body.clone(), Yes),
        ("result.data.tags == ['a', 'b']", body.clone(), Yes),
        ("len(result.data.tags) == 2", body.clone(), Yes),
        ("result.count == 3", body.clone(), Yes),
        ("result.count + 1 == 4", body.clone(), Yes),
        ("result.missing == nil", body.clone(), Yes),
        ("result.missing?.deeper == nil", body.clone(), Yes),
        ("result?.data?.value > 0.9", body.clone(), Yes),
        ("result.data?.missing?.x == nil", body.clone(), Yes),
        (
            "result.missing.deeper == nil",
            body.clone(),
            Fails("cannot fetch deeper from <nil>"),
        ),
        ("'status' in result", body.clone(), Yes),
        ("'nope' in result", body.clone(), No),
        ("'nope' not in result", body.clone(), Yes),
        ("result.status matches '^o'", body.clone(), Yes),
        ("result.status contains 'k'", body.clone(), Yes),
        ("result.status startsWith 'o'", body.clone(), Yes),
        ("result.status endsWith 'x'", body.clone(), No),
        ("result.status not contains 'x'", body.clone(), Yes),
        ("result.status not matches 'x'", body.clone(), Yes),
        ("$env.result.count == 3", body.clone(), Yes),
        ("keys(result.data) == ['tags', 'value']", body.clone(), Yes),
        ("result.count == 'x'", body.clone(), No),
        (
            "result[1] == nil",
            body.clone(),
            Fails("cannot use int to get an element from map[string]interface {}"),
        ),
        // A body that is not JSON arrives as a string.
        ("result == 'OK body'", s("OK body"), Yes),
        ("result contains 'OK'", s("OK body"), Yes),
        (
            "result matches '('",
            s("a"),
            Mentions("error parsing regexp"),
        ),
    ]);
}

#[test]
fn delegated_builtins() {
    table(&[
        ("abs(-2) == 2", NIL, Yes),
        ("max(1, 3, 2) == 3 && min(1, 3, 2) == 1", NIL, Yes),
        (
            "upper('a') == 'A' && lower('A') == 'a' && trim(' a ') == 'a'",
            NIL,
            Yes,
        ),
        ("string(1) == '1'", NIL, Yes),
        ("int('2') == 2 && float('2.5') == 2.5", NIL, Yes),
        (
            "round(1.5) == 2 && floor(1.5) == 1 && ceil(1.5) == 2",
            NIL,
            Yes,
        ),
        ("toJSON([1]) == '[1]'", NIL, Yes),
        ("fromJSON('{\"a\":1}').a == 1", NIL, Yes),
        ("join(['a', 'b'], ',') == 'a,b'", NIL, Yes),
        ("split('a,b', ',')[1] == 'b'", NIL, Yes),
        ("replace('aXa', 'X', 'b') == 'aba'", NIL, Yes),
        ("repeat('ab', 2) == 'abab'", NIL, Yes),
        (
            "first(result) == 1 && last(result) == 2",
            list(&[1.0, 2.0]),
            Yes,
        ),
        ("mean(result) == 1.5", list(&[1.0, 2.0]), Yes),
        ("1..3 == [1, 2, 3]", NIL, Yes),
        ("result in [0.5, 0.7]", f(0.7), Yes),
        ("now() > date('2020-01-01')", NIL, Yes),
        ("duration('1h') > duration('30m')", NIL, Yes),
        ("now() - duration('1h') < now()", NIL, Yes),
        ("date('2023-08-14').Year() == 2023", NIL, Yes),
        ("{'a': 1}.a == 1", NIL, Yes),
        ("{a: 1, 'b': 2, 3: 3}['3'] == 3", NIL, Yes),
        ("`raw \\n` == 'raw \\\\n'", NIL, Yes),
        ("'\\u00e9' == 'é' && \"\\x41\" == 'A'", NIL, Yes),
        ("/* comment */ true // trailing", NIL, Yes),
    ]);
}

#[test]
fn nan() {
    table(&[
        ("result >= 0.95", f(f64::NAN), No),
        ("result < 0.95", f(f64::NAN), No),
        ("result == result", f(f64::NAN), No),
        ("result != result", f(f64::NAN), Yes),
        ("result[0] >= 0.95", list(&[f64::NAN]), No),
        ("all(result, {# >= 0.95})", list(&[0.99, f64::NAN]), No),
    ]);
}

#[test]
fn errors() {
    table(&[
        // upstream TestErrorWithNonBoolReturn, TestErrorWithInvalidReference
        ("1", TRUE, Fails("expected bool, but got int")),
        (
            "invalidVariable",
            TRUE,
            Fails("unknown name invalidVariable"),
        ),
        ("a == true", TRUE, Fails("unknown name a")),
        ("foo(1)", TRUE, Fails("unknown name foo")),
        // upstream TestEvaluateInvalidStruct
        (
            "result.Name() == 'hi'",
            TRUE,
            Fails("type bool has no method Name"),
        ),
        ("result.x", TRUE, Fails("type bool has no field x")),
        ("result?.a == nil", NIL, Fails("type nil has no field a")),
        ("result", f(0.5), Fails("expected bool, but got float64")),
        (
            "result",
            list(&[0.99]),
            Fails("expected bool, but got []float64"),
        ),
        (
            "result",
            js(json!([1, "a"])),
            Fails("expected bool, but got []interface {}"),
        ),
        (
            "result",
            js(json!({"a": 1})),
            Fails("expected bool, but got map[string]interface {}"),
        ),
        ("result", s("x"), Fails("expected bool, but got string")),
        ("result", NIL, Fails("expected bool, but got <nil>")),
        ("nil", f(1.0), Fails("expected bool, but got <nil>")),
        (
            "asInt(result)",
            f(1.0),
            Fails("expected bool, but got int64"),
        ),
        (
            "asFloat(result)",
            f(1.0),
            Fails("expected bool, but got float64"),
        ),
        (
            "result.a",
            js(json!({"a": "x"})),
            Fails("expected bool, but got string"),
        ),
        (
            "result + 1",
            f(1.0),
            Fails("expected bool, but got float64"),
        ),
        ("[1]", NIL, Fails("expected bool, but got []interface {}")),
        (
            "{'a': 1}",
            NIL,
            Fails("expected bool, but got map[string]interface {}"),
        ),
        (
            "default(result, 0)",
            NIL,
            Fails("expected bool, but got int"),
        ),
        ("now()", NIL, Fails("expected bool, but got time.Time")),
        // syntax
        ("", f(1.0), Fails("unexpected token EOF")),
        ("result >", f(1.0), Fails("unexpected token EOF")),
        ("(result > 1", f(1.0), Fails("unexpected token EOF")),
        (
            "result > 1)",
            f(1.0),
            Fails("unexpected token Bracket(\")\")"),
        ),
        (
            "result @ 1",
            f(1.0),
            Fails("unrecognized character: U+0040 '@'"),
        ),
        ("'abc", f(1.0), Fails("literal not terminated")),
        ("'\\q'", f(1.0), Fails("invalid char escape")),
        ("result.", f(1.0), Fails("unexpected end of expression")),
        ("# > 1", f(1.0), Fails("unexpected token Operator(\"#\")")),
        ("1a > 0", f(1.0), Fails("bad number syntax: \"1a\"")),
        (
            "0x > 0",
            f(1.0),
            Fails("invalid hex literal: strconv.ParseInt: parsing \"0x\": invalid syntax"),
        ),
        (
            "1e999 > 0",
            f(1.0),
            Fails(
                "invalid float literal: strconv.ParseFloat: parsing \"1e999\": value out of range",
            ),
        ),
        ("/* open", f(1.0), Fails("unclosed comment")),
        (
            "result not 1",
            f(1.0),
            Fails("unexpected token Number(\"1\")"),
        ),
        (
            "1 ?? 2 + 3 > 0",
            f(1.0),
            Fails(
                "Operator (+) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses.",
            ),
        ),
        (
            "let result = 1; true",
            f(1.0),
            Fails("cannot redeclare result"),
        ),
        (
            "let len = 1; true",
            f(1.0),
            Fails("cannot redeclare builtin len"),
        ),
        (
            "let x = 1; let x = 2; true",
            f(1.0),
            Fails("cannot redeclare variable x"),
        ),
        (
            "result ? true : false",
            f(1.0),
            Fails("non-bool expression (type float64) used as condition"),
        ),
        ("result()", f(1.0), Fails("float64 is not callable")),
    ]);
}

#[test]
fn decision_table() {
    use Outcome::*;
    // Argo's EvaluateResult table; includes upstream TestEvaluateResult* vectors.
    let rows: &[(Option<&str>, Option<&str>, Outcome)] = &[
        (None, None, Successful),
        (Some(""), Some(""), Successful),
        (Some("true"), None, Successful),
        (Some("false"), None, Failed),
        (Some("false"), Some(""), Failed),
        (None, Some("true"), Failed),
        (None, Some("false"), Successful),
        (Some(""), Some("false"), Successful),
        (Some("true"), Some("false"), Successful),
        (Some("true"), Some("true"), Failed),
        (Some("false"), Some("true"), Failed),
        (Some("false"), Some("false"), Inconclusive),
    ];
    for (success, failure, want) in rows {
        assert_eq!(
            evaluate_result(&TRUE, *success, *failure),
            Ok(*want),
            "success={success:?} failure={failure:?}"
        );
    }
    // Neither set: Successful whatever the value, even with no data.
    assert_eq!(evaluate_result(&NIL, None, None), Ok(Successful));
    assert_eq!(evaluate_result(&list(&[]), None, None), Ok(Successful));

    let (ok, bad) = (Some("result >= 0.95"), Some("result < 0.9"));
    assert_eq!(evaluate_result(&f(0.99), ok, bad), Ok(Successful));
    assert_eq!(evaluate_result(&f(0.92), ok, bad), Ok(Inconclusive));
    assert_eq!(evaluate_result(&f(0.5), ok, bad), Ok(Failed));
    assert_eq!(evaluate_result(&f(0.5), ok, None), Ok(Failed));
    assert_eq!(evaluate_result(&f(0.99), None, bad), Ok(Successful));
    // NaN: ordinary comparisons are false.
    let nan = f(f64::NAN);
    assert_eq!(
        evaluate_result(&nan, ok, Some("result < 0.95")),
        Ok(Inconclusive)
    );
    assert_eq!(evaluate_result(&nan, ok, None), Ok(Failed));
    assert_eq!(evaluate_result(&nan, None, bad), Ok(Successful));
    // Datadog returns nil for no data; default() handles it.
    assert_eq!(
        evaluate_result(&NIL, Some("default(result, 0) >= 0.95"), None),
        Ok(Failed)
    );
    let vector = Some("result[0] >= 0.95");
    assert_eq!(
        evaluate_result(&list(&[0.99]), vector, None),
        Ok(Successful)
    );
}

#[test]
fn decision_table_errors() {
    // upstream TestEvaluateResultWithErrorOnSuccessCondition / ...OnFailureCondition
    let err = evaluate_result(&TRUE, Some("a == true"), Some("true"));
    assert_eq!(
        err.as_ref().map_err(ToString::to_string),
        Err("could not evaluate successCondition \"a == true\": unknown name a".to_owned())
    );
    assert_eq!(err.map_err(|e| e.category()), Err("compile"));
    let err = evaluate_result(&TRUE, Some("true"), Some("invalidVar == true"));
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err(
            "could not evaluate failureCondition \"invalidVar == true\": unknown name invalidVar"
                .to_owned()
        )
    );
    // The success condition's error wins; the failure condition is not evaluated.
    let err = evaluate_result(&f(1.0), Some("result["), Some("oops"));
    assert!(matches!(
        err,
        Err(EvalError::Condition {
            condition: ConditionKind::Success,
            ..
        })
    ));

    // upstream TestEvaluateResultErrorMessageWithNilResult / WithEmptySlice
    let no_data = "could not evaluate successCondition \"result[0] >= 0.95\": metric result is nil or empty: no data returned from the metric provider";
    for empty in [NIL, list(&[])] {
        let err = evaluate_result(&empty, Some("result[0] >= 0.95"), None);
        assert_eq!(
            err,
            Err(EvalError::NoData {
                condition: ConditionKind::Success,
                expression: "result[0] >= 0.95".to_owned()
            })
        );
        assert_eq!(err.map_err(|e| e.to_string()), Err(no_data.to_owned()));
    }
    let err = evaluate_result(&NIL, None, Some("result > 1"));
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("could not evaluate failureCondition \"result > 1\": metric result is nil or empty: no data returned from the metric provider".to_owned())
    );
    assert_eq!(
        evaluate_result(&NIL, Some("result"), None).map_err(|e| e.category()),
        Err("no_data")
    );
    // Sluice's own limits are not reported as missing data.
    let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
    let err = evaluate_result(&list(&[]), Some(&deep), None);
    assert_eq!(err.map_err(|e| e.category()), Err("too_complex"));
}

#[test]
fn eval_time_matches_upstream() {
    // upstream TestEvalTimeWithSuccessExpr / WithNotTimeResult / WithInvalidExpression
    let want: jiff::Timestamp = "2023-08-13T23:00:00Z".parse().unwrap();
    assert_eq!(
        eval_time(r#"date("2023-08-14 00:00:00", "2006-01-02 15:04:05", "UTC") - duration("1h")"#),
        Ok(want)
    );
    assert_eq!(
        eval_time("hello"),
        Err(EvalError::Compile("unknown name hello".to_owned()))
    );
    assert!(eval_time("now() -- ?").is_err());
    assert_eq!(eval_time("1"), Err(EvalError::NotTime("int".to_owned())));
    let got = eval_time(r#"now() - duration("1h")"#).unwrap();
    let expected = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    assert!(got.duration_until(expected).abs() < jiff::SignedDuration::from_secs(60));
}

#[test]
fn eval_value_for_range_queries() {
    let start = eval_value(r#"now() - duration("1h")"#, &[]).unwrap();
    let MetricValue::String(text) = &start else {
        panic!("want an RFC 3339 string, got {start:?}");
    };
    let ts: jiff::Timestamp = text.parse().unwrap();
    let expected = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    assert!(ts.duration_until(expected).abs() < jiff::SignedDuration::from_secs(60));
    assert_eq!(
        eval_value(r#"date("2023-08-14T00:00:00Z")"#, &[]),
        Ok(s("2023-08-14T00:00:00Z"))
    );
    assert_eq!(eval_value(r#"duration("90m")"#, &[]), Ok(s("1h30m0s")));
    assert_eq!(eval_value("x * 2", &[("x", f(2.0))]), Ok(f(4.0)));
    assert_eq!(
        eval_value("[1, 'a']", &[]),
        Ok(MetricValue::List(vec![MetricValue::Int(1), s("a")]))
    );
    assert_eq!(
        eval_value("{'k': result}", &[("result", s("v"))]),
        Ok(MetricValue::Map(BTreeMap::from([("k".to_owned(), s("v"))])))
    );
    assert_eq!(eval_value("isNil(1)", &[]), Ok(MetricValue::Bool(true)));
    assert_eq!(
        eval_value("y", &[("x", f(1.0))]),
        Err(EvalError::Compile("unknown name y".to_owned()))
    );
}

#[test]
fn go_string_rendering() {
    let cases: &[(MetricValue, &str)] = &[
        (list(&[0.99]), "[0.99]"),
        (f(0.5), "0.5"),
        (list(&[]), "[]"),
        (js(json!({"a": 1})), "map[a:1]"),
        (
            js(json!({"b": [1, "x"], "a": null})),
            "map[a:<nil> b:[1 x]]",
        ),
        (list(&[1.0, 2.5]), "[1 2.5]"),
        (f(1e6), "1e+06"),
        (f(123456.0), "123456"),
        (f(1234567.0), "1.234567e+06"),
        (f(1e-5), "1e-05"),
        (f(0.0001), "0.0001"),
        (f(1e21), "1e+21"),
        (f(100.0), "100"),
        (f(-2.5), "-2.5"),
        (f(-0.0), "-0"),
        (f(f64::NAN), "NaN"),
        (f(f64::INFINITY), "+Inf"),
        (f(f64::NEG_INFINITY), "-Inf"),
        (MetricValue::Int(-3), "-3"),
        (TRUE, "true"),
        (NIL, "<nil>"),
        (s("x y"), "x y"),
    ];
    for (value, want) in cases {
        assert_eq!(value.to_go_string(), *want, "{value:?}");
    }
    let durations: &[(i64, &str)] = &[
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (1_500_000_000, "1.5s"),
        (61_000_000_000, "1m1s"),
        (5_400_000_000_000, "1h30m0s"),
        (-1_000_000_000, "-1s"),
    ];
    for (nanos, want) in durations {
        assert_eq!(go_duration(*nanos), *want);
    }
}

#[test]
fn json_numbers_are_float64_like_go() {
    assert_eq!(
        js(json!({"n": 3, "l": [1, true, null, "s"]})),
        MetricValue::Map(BTreeMap::from([
            ("n".to_owned(), f(3.0)),
            (
                "l".to_owned(),
                MetricValue::List(vec![f(1.0), TRUE, NIL, s("s")])
            ),
        ]))
    );
    assert!(NIL.is_nil_or_empty());
    assert!(list(&[]).is_nil_or_empty());
    assert!(!js(json!({})).is_nil_or_empty());
}

fn category(expr: &str) -> &'static str {
    match eval_condition(expr, &list(&[1.0, 2.0])) {
        Ok(_) => "ok",
        Err(e) => e.category(),
    }
}

#[test]
fn budgets_stop_runaway_expressions() {
    let runaway = [
        "len(map(1..1000000, {#})) > 0",
        "all(1..1000, {all(1..1000, {all(1..1000, {true})})})",
        "len(repeat('a', 1000000000)) > 0",
        "len(replace(repeat('a', 10000), '', repeat('b', 10000))) > 0",
        "len(join(map(1..50000, {'x'}), repeat('y', 100000))) > 0",
        "let a = [1,2,3,4,5,6,7,8]; let b = concat(a,a,a,a,a,a,a,a); let c = concat(b,b,b,b,b,b,b,b); \
         let d = concat(c,c,c,c,c,c,c,c); let e = concat(d,d,d,d,d,d,d,d); let g = concat(e,e,e,e,e,e,e,e); \
         let h = concat(g,g,g,g,g,g,g,g); len(h) > 0",
        "let a = 'xxxxxxxxxxxxxxxx'; let b = a+a+a+a+a+a+a+a; let c = b+b+b+b+b+b+b+b; let d = c+c+c+c+c+c+c+c; \
         let e = d+d+d+d+d+d+d+d; let g = e+e+e+e+e+e+e+e; let h = g+g+g+g+g+g+g+g; let i = h+h+h+h+h+h+h+h; len(i) > 0",
        "len(toJSON(map(1..100000, {[#, #, #, #, #, #, #, #, #, #]}))) > 0",
        "sum(map(1..2000, {len(uniq(1..2000))})) > 0",
    ];
    for expr in runaway {
        let started = Instant::now();
        assert_eq!(category(expr), "budget", "{expr}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{expr} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        eval_condition("len(map(1..1000000, {#})) > 0", &NIL),
        Err(EvalError::Budget("memory budget exceeded".to_owned()))
    );
    let tight = Limits {
        max_steps: 50,
        ..Limits::default()
    };
    assert_eq!(
        eval_condition_with("all(1..100, {true})", &NIL, &tight),
        Err(EvalError::Budget(
            "expression exceeded its evaluation budget of 50 steps".to_owned()
        ))
    );
    let no_time = Limits {
        max_time: Duration::ZERO,
        ..Limits::default()
    };
    assert_eq!(
        eval_condition_with("all(1..10000, {true})", &NIL, &no_time),
        Err(EvalError::Budget(
            "expression exceeded its time budget of 0 ms".to_owned()
        ))
    );
    // Values cannot nest without bound (every walk over them recurses).
    assert_eq!(
        eval_condition("len(reduce(1..1000, {[#acc]}, [])) > 0", &NIL),
        Err(EvalError::Runtime(
            "value nests deeper than 128 levels".to_owned()
        ))
    );
    // Realistic sizes stay well inside the budget: a 10k-sample matrix.
    let matrix = list(&vec![0.99; 10_000]);
    assert_eq!(
        eval_condition("all(result, {# >= 0.95})", &matrix),
        Ok(true)
    );
    assert_eq!(
        eval_condition("len(filter(result, {# < 0.95})) == 0", &matrix),
        Ok(true)
    );
}

#[test]
fn input_guards_reject_deep_or_long_expressions() {
    let repeat = |unit: &str, n: usize, tail: &str| format!("{}{tail}", unit.repeat(n));
    let deep = [
        format!("{}1{}", "(".repeat(2000), ")".repeat(2000)),
        repeat("!", 4000, "true"),
        repeat("-", 4000, "1 > 0"),
        repeat("1+", 2000, "1 > 0"),
        repeat("result.a", 400, " == nil"),
        format!("{}{}", "[".repeat(2000), "]".repeat(2000)),
        repeat("all(result, {", 300, "true"),
        repeat("1 ? ", 1000, "1"),
        repeat("let x = 1; ", 300, "true"),
        repeat("if true { ", 300, "true"),
        repeat("1 < ", 1000, "2"),
    ];
    for expr in &deep {
        let got = eval_condition(expr, &list(&[1.0]));
        assert!(
            matches!(&got, Err(EvalError::TooComplex(m)) if m.contains("nests deeper")),
            "{}…: {got:?}",
            expr.get(..40).unwrap_or(expr)
        );
    }
    let long = "true && ".repeat(600) + "true";
    assert_eq!(
        eval_condition(&long, &NIL),
        Err(EvalError::TooComplex(
            "expression is 4804 bytes long; the limit is 4096".to_owned()
        ))
    );
    // Just under the limits evaluates, without exhausting the stack.
    let parens = format!("{}result{} > 0", "(".repeat(100), ")".repeat(100));
    assert_eq!(eval_condition(&parens, &f(1.0)), Ok(true));
    let sum = format!("{}1 == 101", "1 + ".repeat(100));
    assert_eq!(eval_condition(&sum, &NIL), Ok(true));
    let nots = format!("{}true", "!".repeat(100));
    assert_eq!(eval_condition(&nots, &NIL), Ok(true));
    let preds = format!("{}true{}", "all([1], {".repeat(30), "})".repeat(30));
    assert_eq!(eval_condition(&preds, &NIL), Ok(true));
    // A result nested deeper than any walk should recurse is refused.
    let mut nested = f(1.0);
    for _ in 0..200 {
        nested = MetricValue::List(vec![nested]);
    }
    assert_eq!(
        eval_condition("true", &nested),
        Err(EvalError::Runtime(
            "metric value nests deeper than 128 levels".to_owned()
        ))
    );
}

#[test]
fn categories() {
    assert_eq!(category("result["), "compile");
    assert_eq!(category("result[9] > 0"), "runtime");
    assert_eq!(category("1"), "type");
    assert_eq!(category("len(repeat('a', 1000000000)) > 0"), "budget");
    assert_eq!(category(&"(".repeat(500)), "too_complex");
    assert_eq!(category("result[0] == 1"), "ok");
}

fn arb_metric() -> impl Strategy<Value = MetricValue> {
    let leaf = prop_oneof![
        Just(MetricValue::Nil),
        any::<bool>().prop_map(MetricValue::Bool),
        any::<f64>().prop_map(MetricValue::Float),
        prop_oneof![Just(0.5), Just(f64::NAN), Just(f64::INFINITY), Just(-1.0)]
            .prop_map(MetricValue::Float),
        any::<i64>().prop_map(MetricValue::Int),
        "(?s).{0,8}".prop_map(MetricValue::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(MetricValue::List),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..6).prop_map(MetricValue::Map),
        ]
    })
}

/// Fragments that tend to parse, so the interpreter and builtins get exercised too.
fn arb_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "result",
        "result[0]",
        "result.a",
        "result?.a",
        "#",
        "#index",
        "#acc",
        ".a",
        "1",
        "0",
        "-1",
        "0.5",
        "1e308",
        "9223372036854775807",
        "\"s\"",
        "'a'",
        "``",
        "nil",
        "true",
        "false",
        "-",
        "+",
        "*",
        "/",
        "%",
        "**",
        "^",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "&&",
        "||",
        "!",
        "not",
        "and",
        "or",
        "in",
        "not in",
        "matches",
        "contains",
        "startsWith",
        "??",
        "?",
        ":",
        "..",
        "|",
        ";",
        ",",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "let x =",
        "x",
        "if",
        "else",
        "1..1000",
        "len(",
        "all(",
        "any(",
        "none(",
        "one(",
        "map(",
        "filter(",
        "count(",
        "sum(",
        "find(",
        "findLastIndex(",
        "reduce(",
        "sortBy(",
        "groupBy(",
        "asInt(",
        "asFloat(",
        "isNaN(",
        "isInf(",
        "isNil(",
        "default(",
        "repeat(",
        "replace(",
        "join(",
        "concat(",
        "flatten(",
        "uniq(",
        "sort(",
        "max(",
        "min(",
        "abs(",
        "int(",
        "float(",
        "string(",
        "toJSON(",
        "fromJSON(",
        "upper(",
        "split(",
        "keys(",
        "values(",
        "first(",
        "last(",
        "get(",
        "take(",
        "bitshl(",
        "now()",
        "duration(\"1h\")",
        "date(\"2023-01-01\")",
        ".Year()",
        ".Add(",
        "$env",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|v| v.join(" "))
}

fn bounded(expr: &str, result: &MetricValue) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let got = eval_condition(expr, result);
    prop_assert!(
        !matches!(&got, Err(EvalError::Runtime(m)) if m == INTERNAL_PANIC),
        "{expr:?} panicked on {result:?}"
    );
    let outcome = evaluate_result(result, Some(expr), Some("true"));
    prop_assert!(
        !matches!(&outcome, Err(EvalError::Condition { source, .. }) if **source == EvalError::Runtime(INTERNAL_PANIC.to_owned())),
        "{expr:?} panicked in evaluate_result on {result:?}"
    );
    let value = eval_value(expr, &[("result", result.clone())]);
    prop_assert!(
        !matches!(&value, Err(EvalError::Runtime(m)) if m == INTERNAL_PANIC),
        "{expr:?} panicked in eval_value on {result:?}"
    );
    let elapsed = started.elapsed();
    prop_assert!(
        elapsed < Duration::from_secs(3),
        "{expr:?} took {elapsed:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(expr in "(?s).{0,200}", result in arb_metric()) {
        bounded(&expr, &result)?;
    }

    #[test]
    fn never_panics_on_token_soup(expr in arb_soup(), result in arb_metric()) {
        bounded(&expr, &result)?;
    }

    #[test]
    fn never_panics_on_deep_or_huge_input(
        unit in prop::sample::select(vec![
            "(", "[", "{a:", "!", "-", "not ", "1+", "result.a", "all(result, {", "f(",
            "1 ? ", "let x = 1; ", "if true { ", "[1,", "'", "\\", "#", "?.", "1 < ",
        ]),
        n in 0usize..6000,
        tail in prop::sample::select(vec!["", "1", "true", "result", ")", "]", "}"]),
        result in arb_metric(),
    ) {
        bounded(&format!("{}{tail}", unit.repeat(n)), &result)?;
    }
}
