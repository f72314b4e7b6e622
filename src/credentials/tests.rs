use super::*;
use crate::config;
use crate::route::Routes;

fn route(format: &str, username_field: &str, password_field: &str) -> LoginRoute {
    let tables = format!(
        r#"
        [[login]]
        path = "/login"
        format = "{format}"
        username_field = "{username_field}"
        password_field = "{password_field}"
        "#
    );
    Routes::new(&config::for_tests(&tables).login)
        .unwrap()
        .logins()[0]
        .clone()
}

fn body(format: BodyFormat, text: &[u8]) -> LoginBody {
    LoginBody {
        bytes: Bytes::copy_from_slice(text),
        format,
    }
}

type Extracted = Result<(String, Vec<u8>), CredentialsError>;

fn form_result(text: &[u8]) -> Extracted {
    let route = route("form", "username", "password");
    extract(&body(BodyFormat::Form, text), &route).map(|c| {
        (
            c.username.as_str().to_owned(),
            c.password.as_bytes().to_vec(),
        )
    })
}

fn json_result(text: &str) -> Extracted {
    let route = route("json", "/user/email", "/user/password");
    extract(&body(BodyFormat::Json, text.as_bytes()), &route).map(|c| {
        (
            c.username.as_str().to_owned(),
            c.password.as_bytes().to_vec(),
        )
    })
}

fn ok(user: &str, password: &str) -> Extracted {
    Ok((user.to_owned(), password.as_bytes().to_vec()))
}

#[test]
fn form_bodies() {
    use CredentialsError::*;
    use Field::*;
    let cases: Vec<(&[u8], Extracted)> = vec![
        (b"username=alice&password=s3cret", ok("alice", "s3cret")),
        (b"password=s3cret&x=1&username=alice", ok("alice", "s3cret")),
        (b"username=a%40b.c&password=a+b%2Bc", ok("a@b.c", "a b+c")),
        (b"username=alice&password=", ok("alice", "")),
        (b"username=alice", Err(Missing { field: Password })),
        (b"password=x", Err(Missing { field: Username })),
        (
            b"username=a&username=b&password=x",
            Err(Duplicate { field: Username }),
        ),
        (
            b"username=a&user%6Eame=b&password=x",
            Err(Duplicate { field: Username }),
        ),
        (
            b"username=a&password=x&password=y",
            Err(Duplicate { field: Password }),
        ),
        (
            b"Username=a&password=x",
            Err(CaseVariant { field: Username }),
        ),
        (
            b"username=a&PASSWORD=y&password=x",
            Err(CaseVariant { field: Password }),
        ),
        (
            b"username=a%FF&password=x",
            Err(NotUtf8 { field: Username }),
        ),
        (
            b"username=a&password=%C3%28",
            Err(NotUtf8 { field: Password }),
        ),
        (
            b"username=a%00&password=x",
            Err(ControlCharacter { field: Username }),
        ),
        (
            b"username=a&password=x%0A",
            Err(ControlCharacter { field: Password }),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(form_result(text), want, "{}", String::from_utf8_lossy(text));
    }
}

#[test]
fn json_bodies() {
    use CredentialsError::*;
    use Field::*;
    let cases = [
        (
            r#"{"user":{"email":"a@b.c","password":"pw"}}"#,
            ok("a@b.c", "pw"),
        ),
        (
            r#"{"user":{"email":"a@b.c","password":"p\u00e9"}}"#,
            ok("a@b.c", "pé"),
        ),
        (
            r#"{"user":{"email":"a@b.c"}}"#,
            Err(Missing { field: Password }),
        ),
        (
            r#"{"email":"a@b.c","password":"pw"}"#,
            Err(Missing { field: Username }),
        ),
        (
            r#"{"user":{"email":"a","password":12}}"#,
            Err(NotAString { field: Password }),
        ),
        (
            r#"{"user":{"email":"a","password":"x","password":"y"}}"#,
            Err(DuplicateJsonKey),
        ),
        (
            r#"{"user":{"email":"a","password":"x"},"user":{}}"#,
            Err(DuplicateJsonKey),
        ),
        (
            r#"{"user":{"email":"a","Email":"b","password":"x"}}"#,
            Err(CaseVariant { field: Username }),
        ),
        (
            r#"{"user":{"email":"a","password":"x\u0000"}}"#,
            Err(ControlCharacter { field: Password }),
        ),
        (
            r#"{"user":{"email":"a","password":"x""#,
            Err(Malformed { format: "JSON" }),
        ),
        ("not json", Err(Malformed { format: "JSON" })),
    ];
    for (text, want) in cases {
        assert_eq!(json_result(text), want, "{text}");
    }
}

#[test]
fn bare_json_field_names_are_top_level() {
    let route = route("json", "username", "password");
    let text = br#"{"username":"alice","password":"pw"}"#;
    let c = extract(&body(BodyFormat::Json, text), &route).unwrap();
    assert_eq!(c.username.as_str(), "alice");
}

#[test]
fn content_types_resolve_per_route() {
    let check = |route_format: BodyFormat, content_type: &str| {
        let parts = http::Request::post("/login")
            .header(CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
            .into_parts()
            .0;
        resolve_format(&parts, route_format)
    };
    use BodyFormat::*;
    assert_eq!(check(Form, "application/x-www-form-urlencoded"), Some(Form));
    assert_eq!(
        check(Form, "application/x-www-form-urlencoded; charset=UTF-8"),
        Some(Form)
    );
    assert_eq!(check(Form, "application/json"), None);
    assert_eq!(check(Json, "application/json; charset=utf-8"), Some(Json));
    assert_eq!(check(Json, "application/vnd.shop+json"), Some(Json));
    assert_eq!(check(Json, "text/plain"), None);
    assert_eq!(check(Auto, "APPLICATION/JSON"), Some(Json));
    assert_eq!(check(Auto, "Application/Vnd.Shop+JSON"), Some(Json));
    assert_eq!(check(Auto, "Application/X-WWW-Form-Urlencoded"), Some(Form));
    assert_eq!(check(Auto, " application/json ; q=1"), Some(Json));
    assert_eq!(check(Auto, "application/jsonx"), None);
    assert_eq!(check(Auto, "text/x+json"), None);
    assert_eq!(check(Auto, "multipart/form-data; boundary=x"), None);
}

#[test]
fn secrets_do_not_print() {
    let c = Credentials {
        username: Username::new("alice".into()),
        password: Password::new(b"hunter2".to_vec()),
    };
    let printed = format!("{c:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("alice"),
        "{printed}"
    );
}

#[test]
fn names_a_shop_would_fold_together_are_refused() {
    use CredentialsError::*;
    use Field::*;
    let form_cases: [(&[u8], Extracted); 5] = [
        (
            "username=a&pa\u{17f}\u{17f}word=x&password=y".as_bytes(),
            Err(CaseVariant { field: Password }),
        ),
        (b"username=a&password=x;password=y", Err(Semicolon)),
        (b"username=a&%u0070assword=x&password=y", Err(PercentU)),
        (b"username=a&password=%U0078", Err(PercentU)),
        (b"username=a&password=x%3By", ok("a", "x;y")),
    ];
    for (text, want) in form_cases {
        assert_eq!(form_result(text), want, "{}", String::from_utf8_lossy(text));
    }
    let json_cases = [
        (
            r#"{"user":{"email":"a","password":"x"},"User":{"email":"a","password":"y"}}"#,
            Err(CaseVariant { field: Username }),
        ),
        (
            r#"{"user":{"email":"a","password":"x","pa\u017f\u017fword":"y"}}"#,
            Err(CaseVariant { field: Password }),
        ),
        (r#"{"user":"a@b.c"}"#, Err(Missing { field: Username })),
    ];
    for (text, want) in json_cases {
        assert_eq!(json_result(text), want, "{text}");
    }
}

#[test]
fn without_its_attempt_field_a_form_is_no_login_attempt() {
    let tables = "[[login]]\npreset = \"woocommerce\"";
    let woocommerce = Routes::new(&config::for_tests(tables).login)
        .unwrap()
        .logins()[0]
        .clone();
    let attempt = |text: &[u8]| is_attempt(&body(BodyFormat::Form, text), &woocommerce);
    // WooCommerce's registration form, on the login's page.
    assert!(!attempt(b"email=a%40b.example&register=Register"));
    assert!(!attempt(b"username=a&password=b&loginx=1"));
    assert!(attempt(b"username=a&password=b&login=Log+in"));
    // Whatever PHP reads as `$_POST['login']`, or might: an array, a
    // leading space, another spelling, an encoded name.
    assert!(attempt(b"username=a&password=b&login%5B%5D=1"));
    assert!(attempt(b"username=a&password=b&+login=1"));
    assert!(attempt(b"username=a&password=b&LOGIN=1"));
    assert!(attempt(b"username=a&password=b&%6Cogin=1"));
    // Bodies the strict parser refuses stay attempts, so they are refused.
    assert!(attempt(b"username=a;password=b;login=1"));
    assert!(attempt(b"username=%u0061&password=b"));
    // A route without an attempt field takes every body as an attempt.
    assert!(is_attempt(
        &body(BodyFormat::Form, b"email=a"),
        &route("form", "username", "password")
    ));
}

#[test]
fn a_username_the_shop_would_read_under_another_name_is_refused() {
    let route_of = |preset: &str| {
        Routes::new(&config::for_tests(&format!("[[login]]\npreset = \"{preset}\"")).login)
            .unwrap()
            .logins()[0]
            .clone()
    };
    let variant = Err(CredentialsError::CaseVariant {
        field: Field::Username,
    });
    // Shopware reads `email` before `username`.
    let form = route_of("shopware6");
    let extract_form = |text: &[u8]| extract(&body(BodyFormat::Form, text), &form).map(|_| ());
    assert_eq!(extract_form(b"username=a%40b.example&password=pw"), Ok(()));
    assert_eq!(
        extract_form(b"username=a%40b.example&email=c%40d.example&password=pw"),
        variant
    );
    assert_eq!(extract_form(b"username=a&EMAIL=c&password=pw"), variant);
    let api = route_of("shopware6_store_api");
    let extract_json =
        |text: &str| extract(&body(BodyFormat::Json, text.as_bytes()), &api).map(|_| ());
    assert_eq!(extract_json(r#"{"username":"a","password":"pw"}"#), Ok(()));
    assert_eq!(
        extract_json(r#"{"username":"a","email":"c","password":"pw"}"#),
        variant
    );
    assert_eq!(
        extract_json(r#"{"username":"a","email":["c"],"password":"pw"}"#),
        variant
    );
    // Alone, the alias is no username either.
    assert_eq!(extract_json(r#"{"email":"c","password":"pw"}"#), variant);
}

#[test]
fn form_values_decode_into_one_buffer_of_the_encoded_length() {
    // A buffer grown while decoding would free copies of the password
    // unzeroed: the decoded value must sit where it was first allocated.
    for raw in [
        &b"correct+horse%20battery%2Bstaple"[..],
        b"%41%42%43%44%45%46%47%48",
        b"++",
        b"",
    ] {
        let decoded = form_decode(raw);
        assert_eq!(decoded.capacity(), raw.len(), "{raw:?}");
    }
    assert_eq!(
        &form_decode(b"correct+horse%20battery%2Bstaple")[..],
        b"correct horse battery+staple"
    );
    assert_eq!(&form_decode(b"%2+%zz%4")[..], b"%2 %zz%4");
}
