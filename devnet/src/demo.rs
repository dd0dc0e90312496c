//! The demo world: provincial-level regions, their agencies, and a genesis.

use cairn_genesis::{
    CredentialType, GenesisDocument, Issuer, IssuerKey, PublicKey, Timestamp, Validator,
    credit_code,
};

use crate::DevnetError;

/// Catalog code of the demo driver's license (机动车驾驶证).
pub const TYPE_DRIVER_LICENSE: &str = "driver-license";
/// Catalog code of the demo business license (营业执照).
pub const TYPE_BUSINESS_LICENSE: &str = "business-license";

/// Provincial-level divisions (GB/T 2260 code, name), the Yangtze River
/// Delta first so that a four-validator devnet is Shanghai, Jiangsu,
/// Zhejiang and Anhui.
const REGIONS: [(&str, &str); 31] = [
    ("310000", "上海市"),
    ("320000", "江苏省"),
    ("330000", "浙江省"),
    ("340000", "安徽省"),
    ("350000", "福建省"),
    ("360000", "江西省"),
    ("370000", "山东省"),
    ("110000", "北京市"),
    ("120000", "天津市"),
    ("130000", "河北省"),
    ("140000", "山西省"),
    ("150000", "内蒙古自治区"),
    ("210000", "辽宁省"),
    ("220000", "吉林省"),
    ("230000", "黑龙江省"),
    ("410000", "河南省"),
    ("420000", "湖北省"),
    ("430000", "湖南省"),
    ("440000", "广东省"),
    ("450000", "广西壮族自治区"),
    ("460000", "海南省"),
    ("500000", "重庆市"),
    ("510000", "四川省"),
    ("520000", "贵州省"),
    ("530000", "云南省"),
    ("540000", "西藏自治区"),
    ("610000", "陕西省"),
    ("620000", "甘肃省"),
    ("630000", "青海省"),
    ("640000", "宁夏回族自治区"),
    ("650000", "新疆维吾尔自治区"),
];

/// The most validators the demo world has regions for.
pub const MAX_DEMO_VALIDATORS: usize = REGIONS.len();

/// The two agencies of one demo region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAgency {
    /// Administrative division code.
    pub region: String,
    /// The region's name.
    pub region_name: String,
    /// Unified Social Credit Code of the traffic police corps (validator, driver's licenses).
    pub police_id: String,
    /// Its name.
    pub police_name: String,
    /// Unified Social Credit Code of the market regulation bureau (business licenses).
    pub market_id: String,
    /// Its name.
    pub market_name: String,
}

/// The agencies of the first `count` demo regions.
pub fn demo_agencies(count: usize) -> Result<Vec<DemoAgency>, DevnetError> {
    if count == 0 || count > MAX_DEMO_VALIDATORS {
        return Err(DevnetError::ValidatorCount {
            requested: count,
            max: MAX_DEMO_VALIDATORS,
        });
    }
    Ok(REGIONS[..count]
        .iter()
        .enumerate()
        .map(|(i, &(region, name))| {
            // Municipalities have a public security bureau, provinces a department.
            let police_body = if name.ends_with('市') {
                "公安局"
            } else {
                "公安厅"
            };
            DemoAgency {
                region: region.to_owned(),
                region_name: name.to_owned(),
                police_id: government_code(region, 1, i),
                police_name: format!("{name}{police_body}交通警察总队"),
                market_id: government_code(region, 2, i),
                market_name: format!("{name}市场监督管理局"),
            }
        })
        .collect())
}

/// A Unified Social Credit Code of a government body (category 1, kind 1)
/// in `region`, with a made-up organisation code.
fn government_code(region: &str, agency: usize, index: usize) -> String {
    let body = format!("11{region}00000{agency}{index:03}");
    // The body is 17 digits, always in the code alphabet.
    let check = credit_code::check_character(&body).unwrap_or('0');
    format!("{body}{check}")
}

/// One validator seat of a devnet: its agencies and the keys they use.
#[derive(Debug, Clone)]
pub struct DemoSeat {
    /// The region's agencies.
    pub agency: DemoAgency,
    /// The police corps' validator key (also its node's libp2p identity).
    pub validator_key: PublicKey,
    /// The police corps' issuing key (driver's licenses).
    pub police_issuer_key: PublicKey,
    /// The market bureau's issuing key (business licenses).
    pub market_issuer_key: PublicKey,
    /// The node's libp2p port on 127.0.0.1.
    pub p2p_port: u16,
}

/// The genesis of a demo network: every police corps a validator of equal
/// power, and both agencies of every region issuers.
pub fn demo_genesis(
    chain_id: &str,
    genesis_time: Timestamp,
    seats: &[DemoSeat],
) -> Result<GenesisDocument, DevnetError> {
    let mut doc = GenesisDocument::new(chain_id, genesis_time);
    let mut police_ids = Vec::new();
    let mut market_ids = Vec::new();
    for seat in seats {
        let a = &seat.agency;
        doc.validators.push(Validator {
            agency_id: a.police_id.clone(),
            name: a.police_name.clone(),
            region: a.region.clone(),
            public_key: seat.validator_key,
            peer_id: seat.validator_key.peer_id(),
            voting_power: 10,
            address: format!("/ip4/127.0.0.1/tcp/{}", seat.p2p_port),
        });
        let issuer = |id: &str, name: &str, key: PublicKey, code: &str| Issuer {
            id: id.to_owned(),
            name: name.to_owned(),
            region: a.region.clone(),
            keys: vec![IssuerKey {
                public_key: key,
                valid_from: genesis_time,
                valid_until: None,
            }],
            accredited_types: vec![code.to_owned()],
        };
        doc.issuers.push(issuer(
            &a.police_id,
            &a.police_name,
            seat.police_issuer_key,
            TYPE_DRIVER_LICENSE,
        ));
        doc.issuers.push(issuer(
            &a.market_id,
            &a.market_name,
            seat.market_issuer_key,
            TYPE_BUSINESS_LICENSE,
        ));
        police_ids.push(a.police_id.clone());
        market_ids.push(a.market_id.clone());
    }
    let fields = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
    doc.credential_types.push(CredentialType {
        code: TYPE_DRIVER_LICENSE.to_owned(),
        name: "机动车驾驶证".to_owned(),
        fields: fields(&[
            "holder_name",
            "id_number",
            "license_number",
            "class",
            "valid_from",
            "valid_until",
        ]),
        issuers: police_ids,
    });
    doc.credential_types.push(CredentialType {
        code: TYPE_BUSINESS_LICENSE.to_owned(),
        name: "营业执照".to_owned(),
        fields: fields(&[
            "entity_name",
            "credit_code",
            "legal_representative",
            "registered_capital",
            "registered_at",
        ]),
        issuers: market_ids,
    });
    doc.validate()?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_code_checks_and_is_unique() {
        let agencies = demo_agencies(MAX_DEMO_VALIDATORS).unwrap();
        let mut ids: Vec<&str> = agencies
            .iter()
            .flat_map(|a| [a.police_id.as_str(), a.market_id.as_str()])
            .collect();
        assert!(ids.iter().all(|id| credit_code::is_valid(id)));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 2 * MAX_DEMO_VALIDATORS);
    }

    #[test]
    fn four_validators_are_the_yangtze_delta() {
        let names: Vec<String> = demo_agencies(4)
            .unwrap()
            .into_iter()
            .map(|a| a.region_name)
            .collect();
        assert_eq!(names, ["上海市", "江苏省", "浙江省", "安徽省"]);
        assert_eq!(
            demo_agencies(1).unwrap()[0].police_name,
            "上海市公安局交通警察总队"
        );
        assert_eq!(
            demo_agencies(2).unwrap()[1].police_name,
            "江苏省公安厅交通警察总队"
        );
    }

    #[test]
    fn counts_outside_the_table_are_refused() {
        assert!(matches!(
            demo_agencies(0),
            Err(DevnetError::ValidatorCount { requested: 0, .. })
        ));
        assert!(matches!(
            demo_agencies(MAX_DEMO_VALIDATORS + 1),
            Err(DevnetError::ValidatorCount { .. })
        ));
    }
}
