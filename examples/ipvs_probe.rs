//! Asks the kernel's IPVS for its version and lists its services and servers with
//! their counters, over uvs's own generic netlink client: a quick check of a kernel
//! (run it inside shared/ipvs-vm). `cargo run --example ipvs_probe`.

use uvs::kernel::ipvs::Ipvs;

fn main() -> std::io::Result<()> {
    let mut ipvs = Ipvs::open()?;
    let info = ipvs.info()?;
    println!(
        "IPVS {}.{}.{}, {} connection table entries",
        info.version >> 16,
        (info.version >> 8) & 0xff,
        info.version & 0xff,
        info.conn_tab_size
    );
    for service in ipvs.services()? {
        println!("{} {:?}", service.config, service.stats);
        for server in ipvs.servers(service.config.key)? {
            println!(
                "  {} active {} inactive {} {:?}",
                server.config.key(),
                server.active,
                server.inactive,
                server.stats
            );
        }
    }
    Ok(())
}
