SELECT
  p.fan_id AS profile_key
FROM crm.fans AS p
WHERE
  p.fan_id IS NOT NULL
  AND (
    NOT (
      (
        p.score IS NOT NULL AND p.score = 10
      )
    )
    AND (
      p.city IS NOT NULL AND p.city <> 'O\'Brien; DROP TABLE fans; --'
    )
    AND (
      (
        p.score IS NOT NULL AND NOT p.score IN (1, 2, 3)
      )
      OR (
        p.score IS NOT NULL AND (
          p.score >= 3 AND p.score <= 7
        )
      )
      OR (
        p.email IS NULL
      )
    )
    AND (
      (
        p.city IS NOT NULL AND LOCATE('50%_off', p.city) > 0
      )
      OR (
        p.city IS NOT NULL AND SUBSTRING(p.city, 1, 3) = 'Lon'
      )
    )
    AND (
      p.vip IS NOT NULL AND p.vip = TRUE
    )
    AND (
      p.birth_date IS NOT NULL AND p.birth_date < CAST('2000-01-01' AS DATE)
    )
    AND (
      p.signup_at IS NOT NULL
      AND p.signup_at >= CAST('2026-01-05 10:00:00.000000' AS TIMESTAMP)
    )
  )
