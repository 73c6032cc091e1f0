//! Token checks: good, expired, not yet, issued in the future, wrong key,
//! wrong algorithm, missing claims, another nick, no token; the rooms claim.

use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef-test-key";

fn key() -> TokenKey {
    TokenKey::new(KEY).unwrap()
}

fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}

fn cred(s: &str) -> Credential {
    Credential::new(s).unwrap()
}

fn refusal(r: Result<Grant>) -> String {
    match r {
        Err(Error::Unauthorized(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const NOW: u64 = 1_800_000_000;

#[test]
fn a_good_token_opens_and_grants_its_rooms() {
    let k = key();
    let t = k.mint(nick("alice"), NOW, 3600, None).unwrap();
    assert_eq!(k.check(Some(&cred(&t)), nick("alice"), NOW).unwrap(), Grant { rooms: None });
    let rooms = [Room::new("#ops").unwrap(), Room::new("#lobby").unwrap()];
    let t = k.mint(nick("alice"), NOW, 3600, Some(&rooms)).unwrap();
    let g = k.check(Some(&cred(&t)), nick("alice"), NOW + 10).unwrap();
    assert!(g.allows(&rooms[0]) && g.allows(&rooms[1]));
    assert!(!g.allows(&Room::new("#secret").unwrap()));
}

#[test]
fn expiry_nbf_and_iat_are_honoured_with_leeway() {
    let k = key();
    let t = k.mint(nick("alice"), NOW, 60, None).unwrap();
    assert!(k.check(Some(&cred(&t)), nick("alice"), NOW + 60 + LEEWAY_SECS).is_ok(), "within the leeway");
    assert_eq!(refusal(k.check(Some(&cred(&t)), nick("alice"), NOW + 61 + LEEWAY_SECS)), "the token has expired");
    let later = Claims { sub: "alice".into(), exp: Some(NOW + 7200), nbf: Some(NOW + 3600), iat: None, rooms: None };
    let t = k.mint_claims(&later).unwrap();
    assert_eq!(refusal(k.check(Some(&cred(&t)), nick("alice"), NOW)), "the token is not valid yet (nbf)");
    assert!(k.check(Some(&cred(&t)), nick("alice"), NOW + 3600).is_ok());
    let future = Claims { iat: Some(NOW + 600), nbf: None, ..later };
    let t = k.mint_claims(&future).unwrap();
    assert_eq!(refusal(k.check(Some(&cred(&t)), nick("alice"), NOW)), "the token was issued in the future (iat)");
}

#[test]
fn a_wrong_key_another_nick_or_no_token_is_refused() {
    let k = key();
    let other = TokenKey::new("another-key-another-key-another-key!").unwrap();
    let t = other.mint(nick("alice"), NOW, 3600, None).unwrap();
    assert_eq!(refusal(k.check(Some(&cred(&t)), nick("alice"), NOW)), "the token's signature is wrong");
    let t = k.mint(nick("bob"), NOW, 3600, None).unwrap();
    assert_eq!(refusal(k.check(Some(&cred(&t)), nick("alice"), NOW)), "the token is for \"bob\", not alice");
    assert!(refusal(k.check(None, nick("alice"), NOW)).contains("needs a token"));
    assert!(refusal(k.check(Some(&cred("not.a.jwt")), nick("alice"), NOW)).contains("not a valid JWT"));
}

#[test]
fn other_algorithms_and_missing_claims_are_refused() {
    let k = key();
    // HS512 with the same key: not what the farm signs with.
    let claims = Claims { sub: "alice".into(), exp: Some(NOW + 60), nbf: None, iat: None, rooms: None };
    let t = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(KEY.as_bytes()))
        .unwrap();
    assert_eq!(refusal(k.check(Some(&cred(&t)), nick("alice"), NOW)), "the token is not signed with HS256");
    // No exp at all.
    #[derive(Serialize)]
    struct NoExp {
        sub: &'static str,
    }
    let t = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &NoExp { sub: "alice" },
        &EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap();
    assert_eq!(refusal(k.check(Some(&cred(&t)), nick("alice"), NOW)), "the token has no exp claim");
    // A rooms claim with a name that is not a room.
    let bad = Claims { rooms: Some(vec!["no spaces".into()]), ..claims };
    let t = k.mint_claims(&bad).unwrap();
    assert!(refusal(k.check(Some(&cred(&t)), nick("alice"), NOW)).contains("invalid room"));
}

#[test]
fn during_a_rotation_both_keys_are_accepted_and_the_first_signs() {
    let old = TokenKey::new("the-old-key-0123456789abcdef0123456789").unwrap();
    let both =
        TokenKey::with_keys(&["the-new-key-0123456789abcdef0123456789", "the-old-key-0123456789abcdef0123456789"])
            .unwrap();
    let by_old = old.mint(nick("alice"), NOW, 60, None).unwrap();
    assert!(both.check(Some(&cred(&by_old)), nick("alice"), NOW).is_ok(), "old tokens still work");
    let by_new = both.mint(nick("alice"), NOW, 60, None).unwrap();
    assert_eq!(refusal(old.check(Some(&cred(&by_new)), nick("alice"), NOW)), "the token's signature is wrong");
    assert!(TokenKey::new("the-new-key-0123456789abcdef0123456789")
        .unwrap()
        .check(Some(&cred(&by_new)), nick("alice"), NOW)
        .is_ok());
}

#[test]
fn a_short_key_is_refused() {
    let e = TokenKey::new("short").unwrap_err().to_string();
    assert!(e.contains("at least 32"), "{e}");
}
