#!/usr/bin/env bash
# A real one-node Slurm cluster on loopback only, for `make check-slow` (tests/slow_slurm.sh).
#   scripts/slurm-local.sh start DIR   start munged (as the munge user, generated key), slurmctld and
#                                      slurmd with DIR/slurm.conf; wait until sinfo shows the node idle
#   scripts/slurm-local.sh stop DIR    stop the daemons by their pid files and remove DIR
# Everything (key, state, spool, logs, pid files, sockets) lives under DIR; the daemons listen on
# two free private ports on 127.0.0.1 and nothing else. Use the cluster with
#   export SLURM_CONF=DIR/slurm.conf
# Needs root (slurmd starts job steps as the submitting user) and slurm-wlm + munge
# (scripts/install-deps.sh --slurm).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

stop() {
  [ -d "$dir" ] || return 0
  for d in slurmd slurmctld munged; do
    pidf="$dir/run/$d.pid"
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf" 2>/dev/null || true)
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # only a folder this script made (it holds slurm.conf and run/) is removed
  if [ -f "$dir/slurm.conf" ] && [ -d "$dir/run" ]; then rm -rf "$dir"; fi
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "slurm-local: needs root" >&2; exit 1; }
for b in munged slurmctld slurmd sinfo; do
  command -v "$b" >/dev/null || { echo "slurm-local: $b not found (scripts/install-deps.sh --slurm)" >&2; exit 1; }
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
chmod 755 "$dir"
mkdir -p "$dir/munge" "$dir/run" "$dir/log" "$dir/state" "$dir/spool"
chown munge:munge "$dir/munge"
chmod 700 "$dir/munge"

# munge: a fresh key, the daemon as the munge user
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
mkdir -p "$dir/munge-sock"
chown munge:munge "$dir/munge-sock"
chmod 755 "$dir/munge-sock"
sock="$dir/munge-sock/munge.socket"
runuser -u munge -- munged --key-file="$dir/munge/munge.key" --socket="$sock" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "slurm-local: munged did not start (see $dir/munge/munged.log)" >&2; exit 1; }
cp "$dir/munge/munged.pid" "$dir/run/munged.pid"

# two free ports on loopback
port=""
for _ in $(seq 1 100); do
  p=$(( 20000 + RANDOM % 20000 ))
  if ! ss -ltnH 2>/dev/null | awk '{print $4}' | grep -Eq ":($p|$((p + 1)))\$"; then port=$p; break; fi
done
[ -n "$port" ] || { echo "slurm-local: no free port" >&2; exit 1; }

host=$(hostname -s)   # slurmctld must run on the host named here; it is reached at 127.0.0.1
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10 ))
cat > "$dir/slurm.conf" <<CONF
# one-node loopback cluster of scripts/slurm-local.sh
ClusterName=dklocal
SlurmctldHost=$host(127.0.0.1)
MailProg=/bin/true
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MaxArraySize=1001
CommunicationParameters=NoInAddrAny
NodeName=dknode NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=dknode Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" || { echo "slurm-local: slurmctld did not start (see $dir/log/slurmctld.log)" >&2; exit 1; }
slurmd -f "$SLURM_CONF" -N dknode || { echo "slurm-local: slurmd did not start (see $dir/log/slurmd.log)" >&2; exit 1; }
for _ in $(seq 1 60); do
  state=$(timeout 5 sinfo -h -n dknode -o %T 2>/dev/null || true)
  [ "$state" = idle ] && { echo "slurm-local: node dknode idle (SLURM_CONF=$SLURM_CONF)"; exit 0; }
  sleep 0.5
done
echo "slurm-local: node not idle after a minute (state '${state:-?}'; see $dir/log)" >&2
exit 1
