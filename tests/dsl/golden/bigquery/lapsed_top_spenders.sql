SELECT
  p.fan_id AS profile_key
FROM crm.fans AS p
WHERE
  p.fan_id IS NOT NULL
  AND (
    p.fan_id IN (
      SELECT
        k
      FROM (
        SELECT
          k,
          RANK() OVER (ORDER BY m DESC) AS r,
          COUNT(*) OVER () AS n
        FROM (
          SELECT
            e1.fan_id AS k,
            COALESCE(SUM(e1.amount), 0) AS m
          FROM purchases AS e1
          WHERE
            e1.fan_id IS NOT NULL
            AND e1.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
            AND e1.purchased_at >= CAST('2024-11-01 00:00:00.000000' AS DATETIME)
            AND e1.purchased_at < CAST('2025-11-01 00:00:00.000000' AS DATETIME)
          GROUP BY
            e1.fan_id
        ) AS g2
      ) AS t3
      WHERE
        (
          r - 1
        ) * 100 < 20 * n
    )
    AND NOT (
      p.fan_id IN (
        SELECT DISTINCT
          e4.fan_id
        FROM purchases AS e4
        WHERE
          e4.fan_id IS NOT NULL
          AND e4.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
          AND e4.purchased_at > CAST('2026-01-01 12:00:00.000000' AS DATETIME)
      )
    )
    AND NOT (
      p.fan_id IN (
        SELECT
          k
        FROM (
          SELECT
            k,
            RANK() OVER (ORDER BY m DESC) AS r,
            COUNT(*) OVER () AS n
          FROM (
            SELECT
              e5.fan_id AS k,
              COUNT(*) AS m
            FROM streams AS e5
            WHERE
              e5.fan_id IS NOT NULL
              AND e5.played_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
            GROUP BY
              e5.fan_id
          ) AS g6
        ) AS t7
        WHERE
          r <= 10
      )
    )
  )
