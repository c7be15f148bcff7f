#!/usr/bin/env bash
# A single-node Slurm for the Slurm executor's tests, as root, without systemd:
#   bash scripts/local-slurm.sh start   installs Debian's packages if missing, writes /etc/slurm/{slurm,gres,slurmdbd}.conf,
#                                       starts munged, MariaDB + slurmdbd (so plain sacct works), slurmctld, slurmd,
#                                       and waits for the node; prints "local-slurm READY: ..."
#   bash scripts/local-slurm.sh stop    cancels queued jobs and stops the daemons this script started
# The node: localhost, $SLURM_NODE_CPUS CPUs (default 16, more than the machine has: config_overrides), 4 fake GPUs
# (links to /dev/null) with 24 shards each, standing for GB of GPU memory. Jobs that end are kept visible 300 s;
# credentials expire after 10 s (how long a requeued job waits). Two partitions: debug (the default) and urgent,
# whose jobs preempt debug's (PreemptType=preempt/partition_prio, PreemptMode=CANCEL: a preempted job ends PREEMPTED).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "local-slurm: run as root" >&2; exit 1; }
RUN=/run/avatar-batch-slurm
CONF=/etc/slurm
GPUS=${SLURM_FAKE_GPUS:-4}; SHARDS=${SLURM_SHARDS_PER_GPU:-24}; CPUS=${SLURM_NODE_CPUS:-16}
DB_PASS=avatarbatch
log() { echo "[local-slurm] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
waitfor() { local n=$(( $1 * 5 )); shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
alive() { local pid; [ -s "$1" ] && pid=$(tr -dc 0-9 <"$1") && [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ]; }
# remember a daemon we started, once it has written its pid file
started() { waitfor 20 alive "$2" "$1" || die "$1 did not start (see its log)"; tr -dc 0-9 <"$2" >"$RUN/$1.pid"; }

stop() {
  if [ -s "$RUN/slurmctld.pid" ] && scontrol ping >/dev/null 2>&1; then
    jobs=$(squeue -h -o %F 2>/dev/null | sort -u)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      waitfor 20 bash -c '[ -z "$(squeue -h -t R,CG -o %i)" ]' || true
    fi
  fi
  for d in slurmd slurmctld slurmdbd mariadbd munged; do
    [ -s "$RUN/$d.pid" ] || continue
    pid=$(tr -dc 0-9 <"$RUN/$d.pid"); rm -f "$RUN/$d.pid"
    [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$d" ] || continue
    kill -TERM "$pid"; waitfor 30 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f /run/slurmctld.pid /run/slurmd.pid /run/slurmdbd.pid
  echo "local-slurm STOPPED"
}

start() {
  mkdir -p "$RUN"
  local missing=()
  for p in munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Keep the packages' scripts from starting daemons: this script starts them.
    local policy=0
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1; }
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}") \
      >"$RUN/apt.log" 2>&1 || { [ $policy = 1 ] && rm -f /usr/sbin/policy-rc.d; tail -20 "$RUN/apt.log" >&2; die "apt-get failed"; }
    [ $policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  fi
  # A second start is a restart with the same configuration.
  stop >/dev/null

  local mem=$(( $(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo) * 9 / 10 ))
  mkdir -p /var/lib/slurm/fakegpu
  for ((i = 0; i < GPUS; i++)); do ln -sfn /dev/null "/var/lib/slurm/fakegpu/nvidia$i"; done
  install -d -o slurm -g slurm -m 755 /var/lib/slurm /var/lib/slurm/avatar-batch-ctld /var/log/slurm
  install -d -m 755 /var/lib/slurm/slurmd "$CONF"
  cat >"$CONF/slurm.conf" <<EOF
# written by avatar-batch scripts/local-slurm.sh: a single-node test cluster
ClusterName=avatarbatch
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=cred_expire=10
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/avatar-batch-ctld
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
KillWait=5
MinJobAge=300
GresTypes=gpu,shard
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu,gres/shard
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$mem Gres=gpu:$GPUS,shard:$(( GPUS * SHARDS )) State=UNKNOWN
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
  {
    echo "# written by avatar-batch scripts/local-slurm.sh: fake GPUs"
    echo "AutoDetect=off"
    echo "Name=gpu File=/var/lib/slurm/fakegpu/nvidia[0-$(( GPUS - 1 ))]"
    for ((i = 0; i < GPUS; i++)); do echo "Name=shard Count=$SHARDS File=/var/lib/slurm/fakegpu/nvidia$i"; done
  } >"$CONF/gres.conf"
  [ -e "$CONF/cgroup.conf" ] && mv "$CONF/cgroup.conf" "$CONF/cgroup.conf.unused.$(date +%s)"
  install -m 600 -o slurm -g slurm /dev/stdin "$CONF/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  chmod 644 "$CONF/slurm.conf" "$CONF/gres.conf"

  install -d -o munge -g munge -m 700 /etc/munge /var/log/munge
  install -d -o munge -g munge -m 711 /var/lib/munge
  install -d -o munge -g munge -m 755 /run/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  if ! alive /run/munge/munged.pid munged; then runuser -u munge -- /usr/sbin/munged; started munged /run/munge/munged.pid; fi
  waitfor 10 bash -c 'munge -n | unmunge' || die "munge does not work"

  if ! mariadb-admin ping >/dev/null 2>&1; then
    install -d -o mysql -g mysql -m 755 /run/mysqld
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid --innodb-buffer-pool-size=64M \
      </dev/null >>"$RUN/mariadbd.log" 2>&1 &
    waitfor 30 mariadb-admin ping || die "mariadbd did not start (see $RUN/mariadbd.log)"
    started mariadbd /run/mysqld/mysqld.pid
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
    ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" \
    || die "cannot set up the accounting database"
  /usr/sbin/slurmdbd; started slurmdbd /run/slurmdbd.pid
  waitfor 30 bash -c '(exec 3<>/dev/tcp/127.0.0.1/6819)' || die "slurmdbd is not listening (see /var/log/slurm/slurmdbd.log)"
  /usr/sbin/slurmctld; started slurmctld /run/slurmctld.pid
  waitfor 30 scontrol ping || die "slurmctld does not answer (see /var/log/slurm/slurmctld.log)"
  /usr/sbin/slurmd -N localhost; started slurmd /run/slurmd.pid
  ready() {
    local state; state=$(sinfo -h -n localhost -o %T 2>/dev/null) || return 1
    case "$state" in
      idle*|mixed*|allocated*) return 0 ;;
      *drain*|down*) scontrol update nodename=localhost state=resume >/dev/null 2>&1; return 1 ;;
      *) return 1 ;;
    esac
  }
  waitfor 60 ready || { scontrol show node localhost >&2 || true; die "the node is not ready after 60 s"; }
  # `sacct -c` opens the jobcomp file for appending; slurmctld makes it 0644 at start.
  [ -e /var/log/slurm/jobcomp.log ] && chmod 666 /var/log/slurm/jobcomp.log
  echo "local-slurm READY: $(sinfo -h -n localhost -o 'node=%n state=%T cpus=%c gres=%G')"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: bash scripts/local-slurm.sh start|stop" >&2; exit 2 ;;
esac
