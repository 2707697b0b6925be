//! Volumes and the image's content, against vmrund and Debian's dockerd (the oracle),
//! with the same outcome step by step (`vmrun_e2e::volume_fill::scenario`): an image's
//! `VOLUME` gets an anonymous volume filled with the image's files (owner kept), `-v
//! /path` makes one too, a new named volume over an image directory starts with its
//! content and keeps it, `nocopy` leaves it empty, a volume that already has files is not
//! touched, and `rm -v` and `--rm` remove the anonymous volumes but never a named one.

use vmrun_e2e::reference::ReferenceDaemon;
use vmrun_e2e::volume_fill::scenario;
use vmrun_e2e::{require_root, Daemon};

#[test]
fn volumes_start_with_the_images_content_as_with_dockerd() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let ours = scenario(&|args| d.docker(args));
    eprintln!("vmrund: {ours:#?}");
    assert_eq!(ours[0], "anonymous: \"hi\\ndeep\\n1000\\n\"", "{ours:?}");
    assert_eq!(ours[3], "after rm -v: +0", "{ours:?}");
    match ReferenceDaemon::start() {
        Ok(oracle) => assert_eq!(ours, scenario(&|args| oracle.docker(args))),
        Err(reason) => vmrun_test_skip::report(&reason),
    }
}
