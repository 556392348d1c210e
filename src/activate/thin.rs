//! LVM's thin layout: the table a thin LV gets on its pool, and what a
//! message queued in the metadata asks of the pool.

use devicemapper::{Device, ThinDevId};

use super::error::{Error, Result};
use crate::dm::{TableLine, ThinPoolMessage, ThinTargetParams};
use crate::lvm::vg::{ThinMessage, Vg};
use crate::units::Sectors;

/// The table of a thin LV `size` long mapping thin device `id` of the pool
/// whose `-tpool` device is `pool`, as LVM loads it.
///
/// ```
/// use lvsnap::{activate::thin_lv_table, units::Sectors};
/// use devicemapper::{Device, ThinDevId};
/// let t = thin_lv_table(Device { major: 254, minor: 2 }, ThinDevId::new_u64(3).unwrap(), Sectors(8));
/// assert_eq!(t[0].to_string(), "0 8 thin 254:2 3");
/// ```
pub fn thin_lv_table(pool: Device, id: ThinDevId, size: Sectors) -> Vec<TableLine> {
    let p = ThinTargetParams {
        pool,
        id,
        external_origin: None,
    };
    vec![TableLine::target(Sectors(0), size, &p)]
}

/// A message queued in a pool's metadata, as the pool is sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedMessage<'a> {
    /// The message.
    pub message: ThinPoolMessage,
    /// For a `create_snap`, the origin thin LV: an active one is suspended
    /// around the message.
    pub origin: Option<&'a str>,
}

/// What queued message `m` of `vg` asks of its pool; `None` when the
/// metadata no longer describes it (its LV gone, or not thin).
pub fn queued_message<'a>(vg: &'a Vg, m: &ThinMessage) -> Result<Option<QueuedMessage<'a>>> {
    let id = |lv: &str, n: u64| {
        ThinDevId::new_u64(n).map_err(|_| Error::invalid(lv, "device_id does not fit in 24 bits"))
    };
    Ok(match m {
        ThinMessage::Delete(n) => Some(QueuedMessage {
            message: ThinPoolMessage::Delete(id("queued delete", *n)?),
            origin: None,
        }),
        ThinMessage::Create(name) => {
            let Some(thin) = vg.lv(name) else {
                return Ok(None);
            };
            let Some((_, n)) = thin.thin() else {
                return Ok(None);
            };
            let new = id(name, n)?;
            match thin.thin_origin() {
                None => Some(QueuedMessage {
                    message: ThinPoolMessage::CreateThin(new),
                    origin: None,
                }),
                Some(o) => {
                    let Some((_, on)) = vg.lv(o).and_then(|l| l.thin()) else {
                        return Ok(None);
                    };
                    Some(QueuedMessage {
                        message: ThinPoolMessage::CreateSnap {
                            id: new,
                            origin: id(o, on)?,
                        },
                        origin: Some(o),
                    })
                }
            }
        }
    })
}
