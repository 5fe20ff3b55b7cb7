SELECT
  p.fan_id AS profile_key
FROM crm.fans AS p
WHERE
  p.fan_id IS NOT NULL
  AND (
    p.fan_id IN (
      SELECT
        e1.fan_id
      FROM purchases AS e1
      WHERE
        e1.fan_id IS NOT NULL
        AND e1.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
        AND e1.purchased_at > CAST('2026-04-01 12:00:00.000000' AS DATETIME)
        AND (
          e1.category IS NOT NULL AND e1.category = 'ticket'
        )
      GROUP BY
        e1.fan_id
      HAVING
        COALESCE(SUM(e1.amount), 0) >= 100
    )
    AND p.fan_id IN (
      SELECT
        e2.fan_id
      FROM streams AS e2
      WHERE
        e2.fan_id IS NOT NULL
        AND e2.played_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
      GROUP BY
        e2.fan_id
      HAVING
        AVG(CAST(e2.seconds AS FLOAT64)) < 200.5
    )
    AND p.fan_id IN (
      SELECT
        e3.fan_id
      FROM streams AS e3
      WHERE
        e3.fan_id IS NOT NULL
        AND e3.played_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
        AND e3.played_at > CAST('2026-05-31 12:00:00.000000' AS DATETIME)
      GROUP BY
        e3.fan_id
      HAVING
        COUNT(DISTINCT e3.genre) > 2
    )
    AND NOT (
      p.fan_id IN (
        SELECT
          e4.fan_id
        FROM purchases AS e4
        WHERE
          e4.fan_id IS NOT NULL
          AND e4.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
        GROUP BY
          e4.fan_id
        HAVING
          NOT (
            COUNT(*) <= 3
          )
      )
    )
  )
