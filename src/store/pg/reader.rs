//! The id map's reads of groups no longer in memory, from a connection of their own on the store's thread.
//! The router waits for the answer (one round trip), as it waits for SQLite's page read.

use std::sync::mpsc::SyncSender;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::Client;
use tracing::info;

use super::{PgTarget, reason};
use crate::model::{RemoteId, RoomAddr, Time};
use crate::router::idmap::{GroupId, Snippet};
use crate::store::idmap::{Found, GroupRead};

/// The longest the router waits for a lookup; past it the message is treated as unknown.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A room's cursor, as the reader answers.
pub type RoomCursor = (RoomAddr, crate::model::Cursor);

pub(super) enum Request {
    /// The group of a member (the router waits).
    Group(RoomAddr, RemoteId, SyncSender<Result<Option<Found>, String>>),
    /// A group by id (the router waits).
    GroupById(GroupId, SyncSender<Result<Option<Found>, String>>),
    /// The cursors of an account's rooms (an account that came to this instance starts from them).
    Cursors(String, tokio::sync::oneshot::Sender<Result<Vec<RoomCursor>, String>>),
}

/// Asks the reader task.
#[derive(Clone)]
pub struct PgReader {
    requests: mpsc::UnboundedSender<Request>,
}

impl PgReader {
    pub(super) fn new(requests: mpsc::UnboundedSender<Request>) -> Self {
        Self { requests }
    }

    /// The cursors the store has for `account`'s rooms.
    pub async fn cursors(&self, account: &crate::model::AccountId) -> Result<Vec<RoomCursor>, String> {
        self.cursors_of(account.to_string()).await
    }

    /// The cursor the store has for one room (a room that comes to this instance alone).
    pub async fn room_cursor(&self, room: &RoomAddr) -> Result<Vec<RoomCursor>, String> {
        self.cursors_of(room.to_string()).await
    }

    async fn cursors_of(&self, key: String) -> Result<Vec<RoomCursor>, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.requests.send(Request::Cursors(key, reply)).map_err(|_| "the PostgreSQL store has stopped".to_owned())?;
        answer.await.map_err(|_| "the PostgreSQL store has stopped".to_owned())?
    }
}

impl PgReader {
    fn ask(
        &self,
        request: impl FnOnce(SyncSender<Result<Option<Found>, String>>) -> Request,
    ) -> Result<Option<Found>, String> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.requests.send(request(reply)).map_err(|_| "the PostgreSQL store has stopped".to_owned())?;
        answer.recv_timeout(READ_TIMEOUT).map_err(|_| "PostgreSQL did not answer in time".to_owned())?
    }
}

impl GroupRead for PgReader {
    fn read(&self, room: &RoomAddr, id: &RemoteId) -> Result<Option<Found>, String> {
        self.ask(|reply| Request::Group(room.clone(), id.clone(), reply))
    }

    fn read_group(&self, group: GroupId) -> Result<Option<Found>, String> {
        self.ask(|reply| Request::GroupById(group, reply))
    }
}

const GROUP_OF: &str = "SELECT g.id, g.sender, g.text, g.time, m.room, m.remote, m.ours
     FROM copies c JOIN groups g ON g.id = c.grp JOIN copies m ON m.grp = g.id
     WHERE c.room = $1 AND c.remote = $2
     ORDER BY m.room, m.part";

/// Answers lookups until the store closes, opening the connection again when it was lost.
pub(super) async fn serve(target: PgTarget, client: Client, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut client = Some(client);
    while let Some(request) = requests.recv().await {
        if client.as_ref().is_none_or(Client::is_closed) {
            client = match target.connect().await {
                Ok(c) => {
                    info!("The id map's PostgreSQL connection is back.");
                    Some(c)
                }
                Err(e) => {
                    match request {
                        Request::Group(_, _, reply) | Request::GroupById(_, reply) => drop(reply.send(Err(reason(&e)))),
                        Request::Cursors(_, reply) => drop(reply.send(Err(reason(&e)))),
                    }
                    continue;
                }
            };
        }
        let connection = client.as_ref().expect("connected");
        match request {
            Request::Group(room, id, reply) => {
                let _ = reply.send(lookup(connection, &room, &id).await.map_err(|e| reason(&e)));
            }
            Request::GroupById(group, reply) => {
                let _ = reply.send(by_id(connection, group).await.map_err(|e| reason(&e)));
            }
            Request::Cursors(account, reply) => {
                let _ = reply.send(cursors(connection, &account).await.map_err(|e| reason(&e)));
            }
        }
    }
}

/// The cursors of an account's rooms (`account` is `<platform>.<name>`), or of one room (a room's address).
async fn cursors(client: &Client, account: &str) -> Result<Vec<RoomCursor>, tokio_postgres::Error> {
    let rows = if account.contains(':') {
        client.query("SELECT room, cursor FROM cursors WHERE room = $1", &[&account]).await?
    } else {
        let prefix = format!("{account}:");
        client.query("SELECT room, cursor FROM cursors WHERE starts_with(room, $1)", &[&prefix]).await?
    };
    Ok(rows
        .iter()
        .filter_map(|row| {
            let room = row.get::<_, String>(0).parse().ok()?;
            Some((room, crate::model::Cursor::new(row.get::<_, String>(1))))
        })
        .collect())
}

const GROUP_BY_ID: &str = "SELECT g.id, g.sender, g.text, g.time, m.room, m.remote, m.ours
     FROM groups g LEFT JOIN copies m ON m.grp = g.id WHERE g.id = $1 ORDER BY m.room, m.part";

async fn by_id(client: &Client, group: GroupId) -> Result<Option<Found>, tokio_postgres::Error> {
    let rows = client.query(GROUP_BY_ID, &[&(group.0 as i64)]).await?;
    Ok(found(&rows))
}

async fn lookup(client: &Client, room: &RoomAddr, id: &RemoteId) -> Result<Option<Found>, tokio_postgres::Error> {
    let rows = client.query(GROUP_OF, &[&room.to_string(), &id.as_str()]).await?;
    Ok(found(&rows))
}

/// A group from the rows of [`GROUP_OF`] or [`GROUP_BY_ID`].
fn found(rows: &[tokio_postgres::Row]) -> Option<Found> {
    let first = rows.first()?;
    let group = GroupId(first.get::<_, i64>(0) as u64);
    let snippet = Snippet { sender: first.get(1), text: first.get(2), time: Time(first.get(3)) };
    let mut members: Vec<(RoomAddr, Vec<RemoteId>, bool)> = Vec::new();
    for row in rows {
        // (A group without members has one row of nulls.)
        let (Some(member), Some(remote), Some(ours)) =
            (row.get::<_, Option<String>>(4), row.get::<_, Option<String>>(5), row.get::<_, Option<bool>>(6))
        else {
            continue;
        };
        let Ok(member) = member.parse::<RoomAddr>() else { continue };
        match members.iter_mut().find(|(r, _, o)| *r == member && *o == ours) {
            Some((_, ids, _)) => ids.push(RemoteId::new(remote)),
            None => members.push((member, vec![RemoteId::new(remote)], ours)),
        }
    }
    Some((group, snippet, members))
}
