//! A client whose DNS answer (here: its bootstrap list) names only dead
//! servers still finds the farm, through the servers its last table listed.

use std::time::Duration;

use integration::{check_for, Raw};
use rttp_client::{Client, Event, Strategy};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_bootstrap_of_dead_servers_falls_back_to_the_servers_of_the_last_table() {
    // s2 publishes an address where nothing listens (as a server whose
    // address moved would); s1 is the client's only bootstrap address.
    let (mut farm, dead) = crate::client_tests::farm_with_s2_at_a_dead_address().await;
    // Users make the choices certain: s1 (0) first, then s2 (1), then s3 (2).
    let _on_s2 = Raw::hello(farm.servers[1].client, "u2").await;
    let _on_s3 = (Raw::hello(farm.servers[2].client, "u3a").await, Raw::hello(farm.servers[2].client, "u3b").await);
    check_for(T, "s1 lists s2 UP at its dead address with 1 user, s3 with 2", || async {
        farm.farm_info(0).await.is_some_and(|t| {
            let row = |id: &str| t.servers.iter().find(|e| e.id.as_str() == id).cloned();
            let (s2, s3) = (row("s2"), row("s3"));
            s2.is_some_and(|e| e.addr.to_string() == dead && e.users == 1 && e.status == rttp_proto::Status::Up)
                && s3.is_some_and(|e| e.users == 2 && e.status == rttp_proto::Status::Up)
        })
    })
    .await;
    let (client, mut ev) = Client::builder()
        .bootstrap(vec![farm.servers[0].client])
        .strategy(Strategy::LeastUsers)
        .nick("wanderer")
        .connect()
        .await
        .unwrap();
    // s1 (its own HELLO counts there) ties with s2, which refuses: the
    // client lands on s1 either way.
    let mut before = Vec::new();
    while let Ok(e) = ev.try_recv() {
        before.push(e);
    }
    let on =
        before.iter().rev().find_map(|e| if let Event::Connected { server, .. } = e { Some(*server) } else { None });
    assert_eq!(on.map(|s| s.to_string()).as_deref(), Some("s1"), "{before:?}");
    farm.kill(0);
    // s2 (fewest users) fails twice; the bootstrap list names only s1, which
    // refuses; the table's servers follow, s3 first (s2 failed already).
    let mut steps = Vec::new();
    let server = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = ev.recv().await.expect("the client goes on");
            steps.push(e.clone());
            if let Event::Connected { server, .. } = e {
                return server;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("back within 30 s: {steps:?}"));
    assert_eq!(server.as_str(), "s3", "{steps:?}");
    let at = |p: &dyn Fn(&Event) -> bool| steps.iter().position(p);
    let retry = at(&|e| matches!(e, Event::Retry { server, .. } if server.as_str() == "s2"));
    let resolved = at(&|e| matches!(e, Event::Resolved { addrs } if addrs == &[farm.servers[0].client]));
    let known = at(&|e| matches!(e, Event::Known { addrs } if addrs.first() == Some(&farm.servers[2].client)));
    assert!(
        retry.is_some() && resolved > retry && known > resolved,
        "s2 twice, s1 refused, then the table's: {steps:?}"
    );
    let Some(Event::Known { addrs }) = known.map(|i| &steps[i]) else { unreachable!() };
    assert!(!addrs.contains(&farm.servers[0].client), "what the bootstrap gave is not tried twice: {addrs:?}");
    client.quit().await;
}
