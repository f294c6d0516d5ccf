# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_regionfilter_global_optspecs
    string join \n pin-root= state-dir= lib-dir= h/help V/version
end

function __fish_regionfilter_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_regionfilter_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_regionfilter_using_subcommand
    set -l cmd (__fish_regionfilter_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c regionfilter -n "__fish_regionfilter_needs_command" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_needs_command" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_needs_command" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_needs_command" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -s V -l version -d 'Print version'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "attach" -d 'Load the filter with a country database and attach it to an interface'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "compile" -d 'Compile country data (and optionally a policy) into an artifact that attach loads'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "inspect" -d 'Summarise an artifact or a database: prefixes and addresses per country, coverage'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "diff" -d 'Show which addresses changed country between two databases or artifacts'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "explain" -d 'Say which country, range, source and verdict apply to addresses'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "update" -d 'Replace the data and/or policy of attached filters atomically (guarded, self-tested)'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "release" -d 'Publish a signed release of an artifact (manifest + minisign signature) for a fleet'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "verify" -d 'Check a release offline as a node would: signature, manifest, expiry, artifact'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "rollback" -d 'Restore the previous known-good data and policy of an interface'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "detach" -d 'Detach the filter from an interface and remove its pins'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "status" -d 'Show each attached interface: mode, policy, database, prefix counts'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "stats" -d 'Show per-country packet and byte counters, most drops first'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "watch" -d 'Print sampled dropped packets as they come (enable with --samples on attach or update)'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "agent" -d 'Keep the configured interfaces filtered with fresh data; serve /metrics and /healthz'
complete -c regionfilter -n "__fish_regionfilter_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l iface -d 'Interface whose incoming traffic is filtered (Ethernet or raw-IP: tun, WireGuard, ip tunnels)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l db -l source -d 'Country data source, repeatable: .mmdb (MaxMind, DB-IP, ip-location-db), CSV ranges, CIDR lists or RIR delegated files. Where sources overlap, the later one wins' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l format -d 'Format of the sources, detected when absent: once for all, or once per --db in order' -r -f -a "mmdb\t'MaxMind DB (`.mmdb`): GeoLite2/GeoIP2 Country or City, DB-IP, ip-location-db'
csv\t'`start,end,CC` ranges (ip-location-db, DB-IP), dotted or numeric, optional header'
cidr\t'One CIDR per line (country from the file name, e.g. `cn.zone`) or `CIDR CC` lines'
rir\t'RIR delegated or delegated-extended statistics (`registry|cc|type|start|value|...`)'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l country-field -d 'Which .mmdb field decides the country' -r -f -a "country\t'Where the network is used: `country`, falling back to `registered_country`'
registered\t'Where the network is registered: `registered_country`, falling back to `country`'
represented\t'Whom it serves (e.g. a military base abroad): `represented_country`, then as `country`'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l prefer -d 'This --db source wins wherever it overlaps the others (repeatable; the last given wins among preferred sources)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l artifact -d 'A compiled artifact (`regionfilter compile`) instead of --db (its policy applies unless policy options are given)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l policy -d 'Policy file (TOML) with allow/deny lists, named groups, exceptions; flags override it' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l allow -d 'Allow-list: only these pass (comma-separated ISO codes and groups, e.g. DE,FR or europe)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l deny -d 'Deny-list: these are dropped, all others pass (codes and groups, e.g. CN or EU)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l allow-cidr -d 'Always pass this source CIDR, whatever its country (repeatable; wins over --deny-cidr). Host bits must be zero: 10.1.2.3/8 is refused, not read as 10.0.0.0/8' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l deny-cidr -d 'Always drop this source CIDR, whatever its country (repeatable; host bits must be zero)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l unknown -d 'Verdict for sources the data places in no country [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l malformed -d 'Verdict for truncated or malformed Ethernet/VLAN/IP headers [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l icmp-errors -d 'ICMP/ICMPv6 errors (unreachable, packet too big, time exceeded, parameter problem): pass them whatever their source, so path-MTU discovery keeps working, or judge them like any packet [default: pass]' -r -f -a "pass\t'Passed (and counted apart): path-MTU discovery and traceroute through routers in any country keep working'
judge\t'Judged by their source like any other packet'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l ports -d 'Judge only packets to these destination ports (e.g. tcp/443,udp/443,tcp/8000-8100); everything else passes, counted as out of scope. `all`: every packet [default: all]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l local -d 'Verdict for special-purpose sources: private, loopback, link-local, CGNAT, ULA, multicast, documentation ranges [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l tcp -d 'Which TCP segments are judged: `all`, or `syn` (only connection attempts, SYN without ACK, so replies to the host\'s own connections pass) [default: all]' -r -f -a "all\t'Every segment'
syn\t'Only connection attempts (SYN without ACK): replies to the host\'s own connections, and connections open before the filter, pass'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l samples -d 'Sample dropped (and would-drop) packets for `regionfilter watch`: at most N per second and CPU; 0 turns sampling off [default: 0]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l nat64-prefix -d 'A NAT64 translator prefix in use (repeatable, at most 4): sources in it are judged by the IPv4 address RFC 6052\'s layout for its length puts where (/32, /40, /48, /56, /64 or /96). Sources in 64:ff9b:1::/48 outside every declared prefix are dropped; 64:ff9b::/96 is always read' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l mode -d 'native runs in the driver (fastest); skb works on any interface' -r -f -a "native\t'In the driver (fastest)'
skb\t'In the generic path: works on any interface'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l lookup -d 'fast: compiled arrays, 112 MiB of kernel memory whatever the data; lpm: the plain tries, several times slower per packet, memory growing with the data (about 160 MiB for the full world, under 1 MiB for a short list)' -r -f -a "fast\t'Compiled arrays (DIR-16-8-8 for IPv4, byte strides for IPv6): 112 MiB of kernel memory for both halves, preallocated; one to a few array reads per packet'
lpm\t'The plain LPM tries: memory grows with the data, several times the cost per packet'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l wait -d 'How long to wait for another command on the same interface to finish (at most 24h)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l dry-run -d 'Judge and count every packet, drops as "would drop", but drop nothing (see what a policy would do before enforcing it; `update --enforce` switches to enforcing)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -l force -d 'Attach even if the policy would drop the client of your SSH session or the peer of an established TCP connection to this interface (the lock-out guard)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand attach" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l db -l source -d 'Country data source, repeatable: .mmdb (MaxMind, DB-IP, ip-location-db), CSV ranges, CIDR lists or RIR delegated files. Where sources overlap, the later one wins' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l format -d 'Format of the sources, detected when absent: once for all, or once per --db in order' -r -f -a "mmdb\t'MaxMind DB (`.mmdb`): GeoLite2/GeoIP2 Country or City, DB-IP, ip-location-db'
csv\t'`start,end,CC` ranges (ip-location-db, DB-IP), dotted or numeric, optional header'
cidr\t'One CIDR per line (country from the file name, e.g. `cn.zone`) or `CIDR CC` lines'
rir\t'RIR delegated or delegated-extended statistics (`registry|cc|type|start|value|...`)'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l country-field -d 'Which .mmdb field decides the country' -r -f -a "country\t'Where the network is used: `country`, falling back to `registered_country`'
registered\t'Where the network is registered: `registered_country`, falling back to `country`'
represented\t'Whom it serves (e.g. a military base abroad): `represented_country`, then as `country`'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l prefer -d 'This --db source wins wherever it overlaps the others (repeatable; the last given wins among preferred sources)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l artifact -d 'A compiled artifact (`regionfilter compile`) instead of --db (its policy applies unless policy options are given)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l policy -d 'Policy file (TOML) with allow/deny lists, named groups, exceptions; flags override it' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l allow -d 'Allow-list: only these pass (comma-separated ISO codes and groups, e.g. DE,FR or europe)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l deny -d 'Deny-list: these are dropped, all others pass (codes and groups, e.g. CN or EU)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l allow-cidr -d 'Always pass this source CIDR, whatever its country (repeatable; wins over --deny-cidr). Host bits must be zero: 10.1.2.3/8 is refused, not read as 10.0.0.0/8' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l deny-cidr -d 'Always drop this source CIDR, whatever its country (repeatable; host bits must be zero)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l unknown -d 'Verdict for sources the data places in no country [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l malformed -d 'Verdict for truncated or malformed Ethernet/VLAN/IP headers [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l icmp-errors -d 'ICMP/ICMPv6 errors (unreachable, packet too big, time exceeded, parameter problem): pass them whatever their source, so path-MTU discovery keeps working, or judge them like any packet [default: pass]' -r -f -a "pass\t'Passed (and counted apart): path-MTU discovery and traceroute through routers in any country keep working'
judge\t'Judged by their source like any other packet'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l ports -d 'Judge only packets to these destination ports (e.g. tcp/443,udp/443,tcp/8000-8100); everything else passes, counted as out of scope. `all`: every packet [default: all]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l local -d 'Verdict for special-purpose sources: private, loopback, link-local, CGNAT, ULA, multicast, documentation ranges [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l tcp -d 'Which TCP segments are judged: `all`, or `syn` (only connection attempts, SYN without ACK, so replies to the host\'s own connections pass) [default: all]' -r -f -a "all\t'Every segment'
syn\t'Only connection attempts (SYN without ACK): replies to the host\'s own connections, and connections open before the filter, pass'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l samples -d 'Sample dropped (and would-drop) packets for `regionfilter watch`: at most N per second and CPU; 0 turns sampling off [default: 0]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l nat64-prefix -d 'A NAT64 translator prefix in use (repeatable, at most 4): sources in it are judged by the IPv4 address RFC 6052\'s layout for its length puts where (/32, /40, /48, /56, /64 or /96). Sources in 64:ff9b:1::/48 outside every declared prefix are dropped; 64:ff9b::/96 is always read' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l out -d 'Artifact to write (replaced atomically; through a symbolic link, its target is replaced). Refused when it is one of the inputs or exists and is not a regular file' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -l dry-run -d 'Judge and count every packet, drops as "would drop", but drop nothing (see what a policy would do before enforcing it; `update --enforce` switches to enforcing)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand compile" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand inspect" -l format -d 'Format of a source file, detected when absent (artifacts are always detected)' -r -f -a "mmdb\t'MaxMind DB (`.mmdb`): GeoLite2/GeoIP2 Country or City, DB-IP, ip-location-db'
csv\t'`start,end,CC` ranges (ip-location-db, DB-IP), dotted or numeric, optional header'
cidr\t'One CIDR per line (country from the file name, e.g. `cn.zone`) or `CIDR CC` lines'
rir\t'RIR delegated or delegated-extended statistics (`registry|cc|type|start|value|...`)'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand inspect" -l country-field -d 'Which .mmdb field decides the country' -r -f -a "country\t'Where the network is used: `country`, falling back to `registered_country`'
registered\t'Where the network is registered: `registered_country`, falling back to `country`'
represented\t'Whom it serves (e.g. a military base abroad): `represented_country`, then as `country`'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand inspect" -l top -d 'How many countries to list, largest IPv4 space first (0: all)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand inspect" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand inspect" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand inspect" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand inspect" -l json -d 'Print JSON (every country) instead of text'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand diff" -l format -d 'Format of a source file, detected when absent (artifacts are always detected)' -r -f -a "mmdb\t'MaxMind DB (`.mmdb`): GeoLite2/GeoIP2 Country or City, DB-IP, ip-location-db'
csv\t'`start,end,CC` ranges (ip-location-db, DB-IP), dotted or numeric, optional header'
cidr\t'One CIDR per line (country from the file name, e.g. `cn.zone`) or `CIDR CC` lines'
rir\t'RIR delegated or delegated-extended statistics (`registry|cc|type|start|value|...`)'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand diff" -l country-field -d 'Which .mmdb field decides the country' -r -f -a "country\t'Where the network is used: `country`, falling back to `registered_country`'
registered\t'Where the network is registered: `registered_country`, falling back to `country`'
represented\t'Whom it serves (e.g. a military base abroad): `represented_country`, then as `country`'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand diff" -l top -d 'How many of the largest changed prefixes to list' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand diff" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand diff" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand diff" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l db -l source -d 'Country data source, repeatable: .mmdb (MaxMind, DB-IP, ip-location-db), CSV ranges, CIDR lists or RIR delegated files. Where sources overlap, the later one wins' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l format -d 'Format of the sources, detected when absent: once for all, or once per --db in order' -r -f -a "mmdb\t'MaxMind DB (`.mmdb`): GeoLite2/GeoIP2 Country or City, DB-IP, ip-location-db'
csv\t'`start,end,CC` ranges (ip-location-db, DB-IP), dotted or numeric, optional header'
cidr\t'One CIDR per line (country from the file name, e.g. `cn.zone`) or `CIDR CC` lines'
rir\t'RIR delegated or delegated-extended statistics (`registry|cc|type|start|value|...`)'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l country-field -d 'Which .mmdb field decides the country' -r -f -a "country\t'Where the network is used: `country`, falling back to `registered_country`'
registered\t'Where the network is registered: `registered_country`, falling back to `country`'
represented\t'Whom it serves (e.g. a military base abroad): `represented_country`, then as `country`'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l prefer -d 'This --db source wins wherever it overlaps the others (repeatable; the last given wins among preferred sources)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l artifact -d 'A compiled artifact (`regionfilter compile`) instead of --db (its policy applies unless policy options are given)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l policy -d 'Policy file (TOML) with allow/deny lists, named groups, exceptions; flags override it' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l allow -d 'Allow-list: only these pass (comma-separated ISO codes and groups, e.g. DE,FR or europe)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l deny -d 'Deny-list: these are dropped, all others pass (codes and groups, e.g. CN or EU)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l allow-cidr -d 'Always pass this source CIDR, whatever its country (repeatable; wins over --deny-cidr). Host bits must be zero: 10.1.2.3/8 is refused, not read as 10.0.0.0/8' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l deny-cidr -d 'Always drop this source CIDR, whatever its country (repeatable; host bits must be zero)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l unknown -d 'Verdict for sources the data places in no country [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l malformed -d 'Verdict for truncated or malformed Ethernet/VLAN/IP headers [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l icmp-errors -d 'ICMP/ICMPv6 errors (unreachable, packet too big, time exceeded, parameter problem): pass them whatever their source, so path-MTU discovery keeps working, or judge them like any packet [default: pass]' -r -f -a "pass\t'Passed (and counted apart): path-MTU discovery and traceroute through routers in any country keep working'
judge\t'Judged by their source like any other packet'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l ports -d 'Judge only packets to these destination ports (e.g. tcp/443,udp/443,tcp/8000-8100); everything else passes, counted as out of scope. `all`: every packet [default: all]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l local -d 'Verdict for special-purpose sources: private, loopback, link-local, CGNAT, ULA, multicast, documentation ranges [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l tcp -d 'Which TCP segments are judged: `all`, or `syn` (only connection attempts, SYN without ACK, so replies to the host\'s own connections pass) [default: all]' -r -f -a "all\t'Every segment'
syn\t'Only connection attempts (SYN without ACK): replies to the host\'s own connections, and connections open before the filter, pass'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l samples -d 'Sample dropped (and would-drop) packets for `regionfilter watch`: at most N per second and CPU; 0 turns sampling off [default: 0]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l nat64-prefix -d 'A NAT64 translator prefix in use (repeatable, at most 4): sources in it are judged by the IPv4 address RFC 6052\'s layout for its length puts where (/32, /40, /48, /56, /64 or /96). Sources in 64:ff9b:1::/48 outside every declared prefix are dropped; 64:ff9b::/96 is always read' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l iface -d 'Answer from the filter attached to this interface: its known-good data and policy give the reasoning, and the attached program itself, run on the live maps, gives the kernel\'s verdict beside it. Exits 1 if the two disagree' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l port -d 'The destination port to judge for (e.g. tcp/443): picks the service or scope rule; a TCP port is judged as a connection attempt. Without it, every rule\'s verdict is shown' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -l dry-run -d 'Judge and count every packet, drops as "would drop", but drop nothing (see what a policy would do before enforcing it; `update --enforce` switches to enforcing)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand explain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l iface -d 'Interface to update' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l db -l source -d 'Country data source, repeatable: .mmdb (MaxMind, DB-IP, ip-location-db), CSV ranges, CIDR lists or RIR delegated files. Where sources overlap, the later one wins' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l format -d 'Format of the sources, detected when absent: once for all, or once per --db in order' -r -f -a "mmdb\t'MaxMind DB (`.mmdb`): GeoLite2/GeoIP2 Country or City, DB-IP, ip-location-db'
csv\t'`start,end,CC` ranges (ip-location-db, DB-IP), dotted or numeric, optional header'
cidr\t'One CIDR per line (country from the file name, e.g. `cn.zone`) or `CIDR CC` lines'
rir\t'RIR delegated or delegated-extended statistics (`registry|cc|type|start|value|...`)'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l country-field -d 'Which .mmdb field decides the country' -r -f -a "country\t'Where the network is used: `country`, falling back to `registered_country`'
registered\t'Where the network is registered: `registered_country`, falling back to `country`'
represented\t'Whom it serves (e.g. a military base abroad): `represented_country`, then as `country`'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l prefer -d 'This --db source wins wherever it overlaps the others (repeatable; the last given wins among preferred sources)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l artifact -d 'A compiled artifact (`regionfilter compile`) instead of --db (its policy applies unless policy options are given)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l url -d 'Download the database from this HTTPS URL instead of --db (cached under --lib-dir, with ETag/If-Modified-Since; `.tar.gz` unpacked; `{license_key}` replaced by $MAXMIND_LICENSE_KEY, and basic auth sent when $MAXMIND_ACCOUNT_ID is set too)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l sha256-url -d 'URL of a SHA-256 file (`sha256sum` format) the download must match' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l policy -d 'Policy file (TOML) with allow/deny lists, named groups, exceptions; flags override it' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l allow -d 'Allow-list: only these pass (comma-separated ISO codes and groups, e.g. DE,FR or europe)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l deny -d 'Deny-list: these are dropped, all others pass (codes and groups, e.g. CN or EU)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l allow-cidr -d 'Always pass this source CIDR, whatever its country (repeatable; wins over --deny-cidr). Host bits must be zero: 10.1.2.3/8 is refused, not read as 10.0.0.0/8' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l deny-cidr -d 'Always drop this source CIDR, whatever its country (repeatable; host bits must be zero)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l unknown -d 'Verdict for sources the data places in no country [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l malformed -d 'Verdict for truncated or malformed Ethernet/VLAN/IP headers [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l icmp-errors -d 'ICMP/ICMPv6 errors (unreachable, packet too big, time exceeded, parameter problem): pass them whatever their source, so path-MTU discovery keeps working, or judge them like any packet [default: pass]' -r -f -a "pass\t'Passed (and counted apart): path-MTU discovery and traceroute through routers in any country keep working'
judge\t'Judged by their source like any other packet'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l ports -d 'Judge only packets to these destination ports (e.g. tcp/443,udp/443,tcp/8000-8100); everything else passes, counted as out of scope. `all`: every packet [default: all]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l local -d 'Verdict for special-purpose sources: private, loopback, link-local, CGNAT, ULA, multicast, documentation ranges [default: pass]' -r -f -a "pass\t''
drop\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l tcp -d 'Which TCP segments are judged: `all`, or `syn` (only connection attempts, SYN without ACK, so replies to the host\'s own connections pass) [default: all]' -r -f -a "all\t'Every segment'
syn\t'Only connection attempts (SYN without ACK): replies to the host\'s own connections, and connections open before the filter, pass'"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l samples -d 'Sample dropped (and would-drop) packets for `regionfilter watch`: at most N per second and CPU; 0 turns sampling off [default: 0]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l nat64-prefix -d 'A NAT64 translator prefix in use (repeatable, at most 4): sources in it are judged by the IPv4 address RFC 6052\'s layout for its length puts where (/32, /40, /48, /56, /64 or /96). Sources in 64:ff9b:1::/48 outside every declared prefix are dropped; 64:ff9b::/96 is always read' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l release-url -d 'Apply the signed release published under this URL (a release directory: docs/releases.md) instead of --db, --artifact or --url, with the release\'s own policy; nothing changes unless it verifies against a --public-key, is not older than the release the interface runs, has not expired, and this node is in its stage' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l public-key -d 'A trusted release key (minisign public key; repeatable, for key rotation)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l node -d 'This node\'s name for the staged rollout [default: the host name]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l channel -d 'The release channel this node follows: a release of another channel is refused' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l ca-file -d 'CA certificates (PEM, one or more) to trust for --url, --sha256-url and --release-url besides the bundled web roots and the system\'s CA store ($SSL_CERT_FILE, $SSL_CERT_DIR): a server under a private CA' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l max-change -d 'Largest change in prefix count or address coverage, per family, accepted without --force' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l wait -d 'How long to wait for another update of the same interface to finish (at most 24h)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l all -d 'Update every attached interface'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l dry-run -d 'Judge and count every packet, drops as "would drop", but drop nothing (see what a policy would do before enforcing it; `update --enforce` switches to enforcing)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l reset-policy -d 'Replace the whole policy with the one the options describe (parts they do not name go back to their defaults: no exceptions, unknown pass, malformed pass). Needs --allow, --deny or --policy'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l enforce -d 'End a dry run: enforce the loaded policy, keeping data and counters (one atomic switch)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -l force -d 'Apply the update even if a guard refuses it (empty data, large change, policy country without prefixes, older build date, a policy that would drop your SSH session or an established TCP peer of the interface)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand update" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l artifact -d 'The artifact to publish (`regionfilter compile` writes one; it carries the policy)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l out -d 'The release directory to write: serve it as it is from any static HTTPS server' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l channel -d 'The channel nodes follow' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l version -d 'The release version: strictly increasing within the channel (nodes refuse a lower one; to roll back, publish a higher version with the old artifact)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l expires-in -d 'How long the manifest stays valid; past it nodes keep what they run and report it stale' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l plan -d 'The rollout plan: shares of nodes, growing, ending at 100%; `dry:` makes a stage a dry run (e.g. dry:1%,1%,10%,50%,100%)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l stage -d 'The stage in force, counted from 0 (advancing a stage is publishing again, with a higher version)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l secret-key -d 'The release key: a minisign secret key (`minisign -G`)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l password-file -d 'A file holding the secret key\'s password (a key made with `minisign -G -W` has none)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand release" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand verify" -l public-key -d 'A trusted public key (minisign format; repeatable, for key rotation)' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand verify" -l running -d 'The version the node runs: a lower one is refused (rollback protection)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand verify" -l channel -d 'The channel the node follows: a release of another is refused [default: any]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand verify" -l node -d 'Say whether this node (by name) is in the stage in force' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand verify" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand verify" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand verify" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand verify" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand rollback" -l iface -d 'Interface whose previous known-good data and policy to restore' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand rollback" -l wait -d 'How long to wait for another command on the same interface to finish (at most 24h)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand rollback" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand rollback" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand rollback" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand rollback" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand detach" -l iface -d 'Interface to stop filtering' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand detach" -l wait -d 'How long to wait for another command on the same interface to finish (at most 24h)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand detach" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand detach" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand detach" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand detach" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand status" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand status" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand status" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand status" -l json -d 'Print JSON instead of text'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand status" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l iface -d 'Only this interface (default: every attached interface)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l format -d '`table`, `json`, or `prometheus` (the text exposition format, for node_exporter\'s textfile collector)' -r -f -a "table\t''
json\t''
prometheus\t''"
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l watch -d 'Live rates instead of totals: packets and bits per second per country, refreshed every SECS seconds (default 1), until interrupted or `--count` refreshes' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l top -d 'With `--watch`: the countries shown per interface, busiest first (0: all, as for `inspect --top`)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l count -d 'With `--watch`: stop after N refreshes' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -l json -d 'Print JSON instead of a table (the same as `--format json`)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand stats" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand watch" -l iface -d 'Only this interface (default: every attached interface)' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand watch" -l count -d 'Stop after N samples' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand watch" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand watch" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand watch" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand watch" -l json -d 'One JSON object per line'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand watch" -l drain -d 'Print the samples waiting in the ring buffer and exit, instead of skipping them and following new ones'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand watch" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -l config -d 'The agent\'s configuration (TOML): interfaces with their data, policy, mode and lookup; refresh interval; metrics address. SIGHUP reloads it' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -l metrics-listen -d 'Serve /metrics and /healthz here instead of the file\'s metrics_listen [default: 127.0.0.1:9877]' -r
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -l pin-root -d 'bpffs directory holding one pin directory per attached interface' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -l state-dir -d 'Directory for the per-interface records `status` reads' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -l lib-dir -d 'Directory for the known-good artifacts `update` keeps and `rollback` restores' -r -F
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -l detach-on-exit -d 'Detach the configured filters when the agent stops (default: leave them attached)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -l json -d 'Log JSON objects instead of key=value lines'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -l check -d 'Check the configuration (every interface, data option and policy, and that the local data files can be read) and exit; nothing is attached or changed'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand agent" -s h -l help -d 'Print help'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "attach" -d 'Load the filter with a country database and attach it to an interface'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "compile" -d 'Compile country data (and optionally a policy) into an artifact that attach loads'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "inspect" -d 'Summarise an artifact or a database: prefixes and addresses per country, coverage'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "diff" -d 'Show which addresses changed country between two databases or artifacts'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "explain" -d 'Say which country, range, source and verdict apply to addresses'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "update" -d 'Replace the data and/or policy of attached filters atomically (guarded, self-tested)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "release" -d 'Publish a signed release of an artifact (manifest + minisign signature) for a fleet'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "verify" -d 'Check a release offline as a node would: signature, manifest, expiry, artifact'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "rollback" -d 'Restore the previous known-good data and policy of an interface'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "detach" -d 'Detach the filter from an interface and remove its pins'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "status" -d 'Show each attached interface: mode, policy, database, prefix counts'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "stats" -d 'Show per-country packet and byte counters, most drops first'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "watch" -d 'Print sampled dropped packets as they come (enable with --samples on attach or update)'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "agent" -d 'Keep the configured interfaces filtered with fresh data; serve /metrics and /healthz'
complete -c regionfilter -n "__fish_regionfilter_using_subcommand help; and not __fish_seen_subcommand_from attach compile inspect diff explain update release verify rollback detach status stats watch agent help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
