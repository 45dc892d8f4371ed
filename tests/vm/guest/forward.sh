#!/bin/bash
# The nft hooks' scenario (issue 6), run by suite.sh: a router namespace fr
# between fa (10.9.1.1) and fc (10.9.2.2), a ruleset with a base chain per
# hook, a jump, a goto, a verdict map, a reject, a drop, an accept and a
# counter on every rule, and traffic that meets each of them; then a table
# created during the recording. Leaves the
# recording (/out/fwd), what `nft monitor trace` printed in fr
# (/out/fwd-monitor.txt) and the counters (/out/fwd-counters.json) for
# tests/e2e/vm.rs.
set -euo pipefail
# Seconds since the suite began, on each phase line: where a slow guest spends its time.
export SUITE_T0=${SUITE_T0:-$EPOCHSECONDS}

for n in fa fr fc; do
  ip netns add $n
  # No IPv6: router solicitations and neighbour discovery would go
  # through the chains at random times and blur the counter comparison.
  ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n $n link set lo up
done
ip link add veth-a netns fa type veth peer name veth-ra netns fr
ip link add veth-c netns fc type veth peer name veth-rc netns fr
ip -n fa addr add 10.9.1.1/24 dev veth-a; ip -n fa link set veth-a up
ip -n fa route add default via 10.9.1.254
ip -n fc addr add 10.9.2.2/24 dev veth-c; ip -n fc link set veth-c up
ip -n fc route add default via 10.9.2.254
ip -n fr addr add 10.9.1.254/24 dev veth-ra; ip -n fr link set veth-ra up
ip -n fr addr add 10.9.2.254/24 dev veth-rc; ip -n fr link set veth-rc up
ip netns exec fr sysctl -qw net.ipv4.ip_forward=1
# Neighbours first, so the recorded traffic has no ARP delays.
ip netns exec fa ping -q -c 1 -W 2 10.9.1.254 > /dev/null
ip netns exec fc ping -q -c 1 -W 2 10.9.2.254 > /dev/null

ip netns exec fr nft -f - <<'NFT'
table inet fw {
  chain prerouting {
    type filter hook prerouting priority 0; policy accept;
    counter
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ip protocol icmp counter accept
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ip protocol icmp counter jump icmp_chk
    ip protocol icmp counter accept
    tcp dport { 22, 80, 443 } counter tcp dport vmap { 22 : drop, 80 : jump web, 443 : accept }
    udp dport 53 counter goto udp_chk
  }
  chain icmp_chk {
    icmp type echo-request counter accept
    icmp type echo-reply counter return
  }
  chain web {
    counter reject with tcp reset
  }
  chain udp_chk {
    udp dport 53 counter
  }
  chain output {
    type filter hook output priority 0; policy accept;
    counter
  }
  chain postrouting {
    type filter hook postrouting priority 0; policy accept;
    counter
  }
}
NFT

ip netns exec fr nft -a monitor trace > /out/fwd-monitor.txt &
monitor=$!
nft-recorder record -o /out/fwd --netns fr --mode nft --nft-hooks on --duration 10 &
rec=$!
while [ ! -e /out/fwd/recording.json ]; do kill -0 $rec; sleep 0.2; done
ip netns exec fa ping -q -c 2 -i 0.2 10.9.2.2          # forwarded: jump, accept / return
ip netns exec fa ping -q -c 2 -i 0.2 10.9.1.254        # input accept; replies via output
ip netns exec fa nc -z -w 2 10.9.2.2 80 || true        # vmap jump web: reject with reset
ip netns exec fa nc -z -w 1 10.9.2.2 22 || true        # vmap drop
ip netns exec fa nc -z -w 1 10.9.2.2 443 || true       # vmap accept; fc's reset: policy drop
ip netns exec fa bash -c 'echo hi > /dev/udp/10.9.2.2/53' # goto udp_chk, return, policy drop
# A table created while recording: the recorder lists the ruleset again to
# name it.
ip netns exec fr nft -f - <<'NFT'
table ip late {
  chain relay {
    type filter hook forward priority 10; policy accept;
    counter
  }
}
NFT
ip netns exec fa ping -q -c 1 10.9.2.2
wait $rec
sleep 0.3; kill $monitor || true
ip netns exec fr nft -a -j list table inet fw > /out/fwd-counters.json
ip netns exec fr nft -a list table inet fw > /out/fwd-ruleset.txt
echo "forward: done (at $(( EPOCHSECONDS - SUITE_T0 )) s)"
