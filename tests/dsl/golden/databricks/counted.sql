SELECT
  p.fan_id AS profile_key
FROM crm.fans AS p
WHERE
  p.fan_id IS NOT NULL
  AND (
    NOT (
      p.fan_id IN (
        SELECT
          e1.fan_id
        FROM purchases AS e1
        WHERE
          e1.fan_id IS NOT NULL
          AND e1.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
          AND e1.purchased_at > CAST('2025-07-01 12:00:00.000000' AS TIMESTAMP)
        GROUP BY
          e1.fan_id
        HAVING
          COUNT(*) > 1
      )
    )
    AND NOT (
      p.fan_id IN (
        SELECT DISTINCT
          e2.fan_id
        FROM streams AS e2
        WHERE
          e2.fan_id IS NOT NULL
          AND e2.played_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
          AND e2.played_at > CAST('2026-06-30 00:00:00.000000' AS TIMESTAMP)
      )
    )
    AND NOT (
      p.fan_id IN (
        SELECT DISTINCT
          e3.fan_id
        FROM clip_samples AS e3
        WHERE
          e3.fan_id IS NOT NULL
          AND e3.sampled_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
          AND (
            (
              e3.artist IS NOT NULL AND e3.artist = 'a'
            ) OR (
              e3.artist IS NULL
            )
          )
      )
    )
    AND p.fan_id IN (
      SELECT
        e4.fan_id
      FROM streams AS e4
      WHERE
        e4.fan_id IS NOT NULL
        AND e4.played_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
        AND (
          e4.seconds IS NOT NULL AND e4.seconds > 30
        )
      GROUP BY
        e4.fan_id
      HAVING
        COUNT(*) = 3
    )
  )
