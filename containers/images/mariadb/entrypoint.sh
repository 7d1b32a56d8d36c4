#!/bin/sh
# The official mariadb image's contract on Debian's MariaDB: on an empty datadir, install the
# system tables, set the root password (root@'%' too), create MYSQL_DATABASE and MYSQL_USER with
# MYSQL_PASSWORD (all privileges on that database), through a socket-only temporary server run
# with the same flags; then run the server as the mysql user (`--flag ...` alone means `mariadbd --flag ...`).
set -eu
case "${1:-mariadbd}" in -*) set -- mariadbd "$@" ;; esac
[ $# -gt 0 ] || set -- mariadbd
case "$1" in mariadbd | mysqld) ;; *) exec "$@" ;; esac

datadir=/var/lib/mysql
root_pw=${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}
user=${MARIADB_USER:-${MYSQL_USER:-}}
password=${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}
database=${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld "$datadir"

if [ ! -d "$datadir/mysql" ]; then
  if [ -z "$root_pw" ]; then
    echo "error: MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD) is not set" >&2
    exit 1
  fi
  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve >/dev/null
  sock=/run/mysqld/init.sock
  "$@" --user=mysql --skip-networking --socket="$sock" &
  pid=$!
  i=0
  until mariadb-admin --socket="$sock" -uroot ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "error: the temporary server did not start" >&2; exit 1; }
    sleep 0.1
  done
  esc() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "DELETE FROM mysql.user WHERE user = '' OR (user = 'root' AND host NOT IN ('localhost'));"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(esc "$root_pw")';"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(esc "$root_pw")';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "$database" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"; fi
    if [ -n "$user" ] && [ -n "$password" ]; then
      echo "CREATE USER '$(esc "$user")'@'%' IDENTIFIED BY '$(esc "$password")';"
      if [ -n "$database" ]; then echo "GRANT ALL ON \`$database\`.* TO '$(esc "$user")'@'%';"; fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$sock" -uroot
  kill "$pid"
  wait "$pid" || true
  echo "MariaDB init process done. Ready for start up."
fi
exec "$@" --user=mysql
