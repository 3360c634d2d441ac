#!/usr/bin/env bash
# A single-machine Slurm cluster on 127.0.0.1 for the tests (Debian's slurm-wlm 22.05, munge, slurmdbd, mariadb):
#   scripts/slurm_cluster.sh start DIR [NODES]   write DIR/slurm.conf, start the daemons (NODES slurmd, default 1,
#                                               named n1..nN on their own ports), wait until the nodes are idle
#   scripts/slurm_cluster.sh stop DIR            stop every daemon this script started (by the pids in DIR/pids)
#                                               and remove its /etc/hosts line
#   scripts/slurm_cluster.sh install             apt-get install the packages (root; what .ci/run calls)
# Clients need SLURM_CONF=DIR/slurm.conf. Accounting (slurmdbd) is not optional: without it submitit never learns
# that a job killed by SIGKILL, OOM or scancel ended. munged refuses to run as root: it runs as `munge`.
# AuthType=auth/slurm does not exist in 22.05, hence munge. Everything else lives in DIR, but for one line in
# /etc/hosts: node names that do not resolve (n1, n2, ...) as 127.0.0.1, for a DDP run's rendezvous on the first node
# (torchrun's MASTER_ADDR is a node name, as on a real cluster); marked with DIR, removed by stop.
# A requeued job starts again after the job credential's lifetime (AuthInfo cred_expire, 120 s by default): slurmd
# refuses a restart whose credential is no newer than the kill ("Job credential revoked": the job ends FAILED, as
# when a test once forced StartTime=now). Here it is 10 s, so the requeue tests wait Slurm's own delay, a short one.
set -euo pipefail
PACKAGES="slurm-wlm munge slurmdbd mariadb-server"
PORT_BASE=${VITBENCH_SLURM_PORT:-16817}  # slurmctld; slurmdbd +1; slurmd of node i +1+i

log() { echo "slurm_cluster: $*" >&2; }

install() {
    command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v munged >/dev/null \
        && command -v mariadbd >/dev/null && return 0
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || { log "need root and apt-get to install $PACKAGES"; return 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $PACKAGES >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 \
        && apt-get install -y -q $PACKAGES >/dev/null 2>&1; }
}

hosts_mark() { echo "# vitbench slurm_cluster.sh $DIR"; }

hosts_add() {  # names...: those that do not resolve, as 127.0.0.1
    local missing=""
    for name in "$@"; do getent hosts "$name" >/dev/null || missing+=" $name"; done
    [ -n "$missing" ] || return 0
    [ -z "$(tail -c 1 /etc/hosts)" ] || echo >>/etc/hosts  # a last line without its newline stays whole
    echo "127.0.0.1$missing $(hosts_mark)" >>/etc/hosts
}

hosts_remove() {  # in place, not by rename: /etc/hosts is often a bind mount
    grep -qF "$(hosts_mark)" /etc/hosts 2>/dev/null || return 0
    local kept; kept=$(grep -vF "$(hosts_mark)" /etc/hosts || true)
    printf '%s\n' "$kept" >/etc/hosts
}

started() { echo "$1 $2" >>"$DIR/pids"; }  # name pid

wait_for() {  # seconds, description, command...
    local limit=$1 what=$2; shift 2
    for _ in $(seq $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    log "$what did not come up within ${limit}s; logs in $DIR"; return 1
}

start() {
    local nodes=${1:-1} cpus=8 ctld=$PORT_BASE dbd=$((PORT_BASE + 1)) host
    host=$(hostname)
    mkdir -p "$DIR/state" "$DIR/db"
    : >"$DIR/pids"
    hosts_add $(seq -f "n%g" "$nodes")
    # munge: as the munge user with the packaged key, on the default socket (sacctmgr's persistent connection to
    # slurmdbd ignores AuthInfo's socket), so one such cluster runs on a machine at a time; its files in /run/munge,
    # which the munge user can reach (DIR may sit in a folder only root may enter)
    mkdir -p /run/munge && chown munge: /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/vitbench-munged.pid \
        --log-file=/run/munge/vitbench-munged.log --seed-file=/run/munge/vitbench-munged.seed --force \
        </dev/null >/dev/null 2>&1 || { log "munged did not start: /run/munge/vitbench-munged.log"; exit 1; }
    started munged "$(cat /run/munge/vitbench-munged.pid)"
    # mariadb: a fresh database folder in DIR, reached by its socket only
    mariadb-install-db --datadir="$DIR/db" --user=root --auth-root-authentication-method=socket >"$DIR/db.log" 2>&1
    /usr/sbin/mariadbd --no-defaults --user=root --datadir="$DIR/db" --socket="$DIR/mysql.sock" --skip-networking \
        --pid-file="$DIR/mariadb.pid" --log-error="$DIR/mariadb.log" </dev/null >/dev/null 2>&1 &
    started mariadbd $!
    wait_for 30 mariadb mariadb --socket="$DIR/mysql.sock" -e "select 1"
    cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=0
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/slurmdbd.log
EOF
    chmod 600 "$DIR/slurmdbd.conf"
    local node_lines="" names=""
    for i in $(seq "$nodes"); do
        node_lines+="NodeName=n$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT_BASE + 1 + i)) CPUs=$cpus"
        node_lines+=" RealMemory=4000 State=UNKNOWN"$'\n'
        names+="${names:+,}n$i"
    done
    cat >"$DIR/slurm.conf" <<EOF
ClusterName=vitbench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
KillWait=2
MinJobAge=300
InactiveLimit=0
SchedulerParameters=sched_interval=1
$node_lines
PartitionName=debug Nodes=$names Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$DIR/slurm.conf"  # slurmdbd reads slurmdbd.conf beside it
    MYSQL_UNIX_PORT="$DIR/mysql.sock" /usr/sbin/slurmdbd </dev/null >/dev/null 2>&1  # the client library's socket: the database above
    wait_for 30 slurmdbd test -s "$DIR/slurmdbd.pid"
    started slurmdbd "$(cat "$DIR/slurmdbd.pid")"
    wait_for 30 "slurmdbd's port" sacctmgr -i -n list cluster
    sacctmgr -i add cluster vitbench >/dev/null 2>&1 || true
    /usr/sbin/slurmctld -f "$DIR/slurm.conf" </dev/null >/dev/null 2>&1
    wait_for 30 slurmctld test -s "$DIR/slurmctld.pid"
    started slurmctld "$(cat "$DIR/slurmctld.pid")"
    for i in $(seq "$nodes"); do
        /usr/sbin/slurmd -f "$DIR/slurm.conf" -N "n$i" </dev/null >/dev/null 2>&1
        wait_for 30 "slurmd n$i" test -s "$DIR/slurmd-n$i.pid"
        started "slurmd-n$i" "$(cat "$DIR/slurmd-n$i.pid")"
    done
    wait_for 60 "idle nodes" sh -c "[ \"\$(sinfo -h -o %T -t idle | wc -l)\" -ge 1 ] && ! sinfo -h -o %T | grep -qv idle"
    log "up: SLURM_CONF=$DIR/slurm.conf ($nodes node(s))"
}

stop() {
    hosts_remove
    [ -f "$DIR/pids" ] || return 0
    tac "$DIR/pids" | while read -r name pid; do
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$DIR/pids"
}

case "${1:-}" in
    install) install ;;
    start) DIR=$(realpath -m "${2:?DIR}"); trap 'stop' EXIT; start "${3:-1}"; trap - EXIT ;;
    stop) DIR=$(realpath -m "${2:?DIR}"); stop ;;
    *) echo "usage: $0 install | start DIR [NODES] | stop DIR" >&2; exit 2 ;;
esac
