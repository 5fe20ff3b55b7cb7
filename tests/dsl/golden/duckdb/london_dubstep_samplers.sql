SELECT
  p.fan_id AS profile_key
FROM crm.fans AS p
WHERE
  p.fan_id IS NOT NULL
  AND (
    (
      p.city IS NOT NULL AND p.city = 'London'
    )
    AND (
      p.country IS NOT NULL AND p.country = 'GB'
    )
    AND p.fan_id IN (
      SELECT
        e1.fan_id
      FROM streams AS e1
      WHERE
        e1.fan_id IS NOT NULL
        AND e1.played_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
        AND e1.played_at > CAST('2026-05-31 12:00:00.000000' AS TIMESTAMP)
        AND (
          e1.genre IS NOT NULL AND e1.genre = 'dubstep'
        )
      GROUP BY
        e1.fan_id
      HAVING
        COUNT(*) >= 5
    )
    AND p.fan_id IN (
      SELECT
        e2.fan_id
      FROM clip_samples AS e2
      WHERE
        e2.fan_id IS NOT NULL
        AND e2.sampled_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
        AND e2.sampled_at > CAST('2026-05-31 12:00:00.000000' AS TIMESTAMP)
      GROUP BY
        e2.fan_id
      HAVING
        COUNT(*) >= 3
    )
    AND NOT (
      p.fan_id IN (
        SELECT DISTINCT
          e3.fan_id
        FROM purchases AS e3
        WHERE
          e3.fan_id IS NOT NULL
          AND e3.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
          AND e3.purchased_at > CAST('2026-04-01 12:00:00.000000' AS TIMESTAMP)
          AND (
            e3.category IS NOT NULL AND e3.category = 'ringtone'
          )
      )
    )
  )
